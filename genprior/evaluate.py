"""The accuracy protocol: train fresh networks on a set, test them on the real test split.

A protocol is a named, frozen config in configs/protocol/ (dc_convnet, cross_arch, fast).
For every model it names, `runs` networks are trained from scratch on the set and the
final-epoch test accuracy is reported as mean +- std (never the best epoch: that would
select on the test split). Beside the set, always, the same protocol on a random real
subset of the same IPC, and the full train split under its own large-set schedule
(cached, since it costs the same for every set).

It judges files, not objects: it never imports a synset or an objective, so a set made
by any tool is judged the same way. A set is judged in the value space its file names
(normalized, unit or zca), the random real baseline with it: a learned lr belongs to the
space it was learned in, so a unit-space set is not mapped to normalized values first.

    python -m genprior.evaluate runs/x/synset.safetensors protocol=dc_convnet
    python -m genprior.evaluate --random-real dataset=fashion_mnist ipc=10
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from genprior import artifacts
from genprior.augment import DSA, dsa_or_none
from genprior.data import cache_dir, check_ipc, dataset_info, load_split
from genprior.errors import ArgumentParser, ConfigError, message
from genprior.files import write_json, write_text, write_torch
from genprior.host import check_device, retain_freed_memory
from genprior.nets import NETS, build_net, has_batchnorm, net_digest, seeded_net
from genprior.options import option, spec_from, split_args
from genprior.progress import progress
from genprior.report import accuracy_text
from genprior.setfile import SavedSet, check_against, load_set
from genprior.shipped import CONFIG_DIR
from genprior.training import compiled_forward, standardized, train_epoch

PROTOCOLS = tuple(sorted(p.stem for p in (CONFIG_DIR / "protocol").glob("*.yaml")))


# ---------------------------------------------------------------- protocol configs

PRECISIONS = ("fp32", "bf16")
VIEWS = ("all", "one")


@dataclass(kw_only=True)
class Schedule:
    """How one network is trained (a protocol, and its large-set `full_data` schedule)."""
    name: str = option()
    runs: int = option(min=1)
    epochs: int = option(min=1)
    batch: int = option(min=1)
    lr: float = option(above=0)
    momentum: float = option(min=0, below=1)
    weight_decay: float = option(min=0)
    lr_decay_epoch: int | None = option(min=1)  # null: epochs // 2 + 1 (see _decay)
    dsa: str = option()
    precision: str = option("fp32", choices=PRECISIONS)
    compile: bool = option(False)  # torch.compile the training forward (same math, float rounding aside)
    batched: bool = option(False)  # train all runs of a model together (vmap): independent runs, one stream; not compiled
    views: str = option("all", choices=VIEWS)  # sets of several views per item (HaBa): train on all, or one per epoch
    standardize: bool = option(False)  # every batch, training and test, at mean 0 and std 1 (HaBa's evaluation)

    def __post_init__(self):
        DSA(self.dsa)  # an unknown op is one line naming the valid ones


@dataclass(kw_only=True)
class Protocol(Schedule):
    """A protocol file's keys (configs/protocol/); checked before any network trains."""
    models: list[str] = option(choices=tuple(sorted(NETS)))
    test_batch: int = option(1024, min=1)
    seed: int = option(min=0)
    full_data: Schedule


def load_protocol(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """A protocol by name (configs/protocol/NAME.yaml) or path, with Hydra `key=value` overrides."""
    from hydra import compose, initialize_config_dir

    path = Path(name) if name.endswith(".yaml") else CONFIG_DIR / "protocol" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)} or a path to a .yaml")
    # Hydra resolves `defaults: [dc_convnet, _self_]` in the file's folder, then in the shipped
    # protocols' (a copy kept anywhere, as dc_convnet.yaml suggests, still extends them), and
    # refuses keys the protocol lacks
    shipped = str(CONFIG_DIR / "protocol").replace("'", "\\'")
    search = f"hydra.searchpath=['file://{shipped}']"
    with initialize_config_dir(str(path.resolve().parent), version_base="1.3"):
        try:
            cfg = compose(path.stem, overrides=[*overrides, search])
        except _hydra_errors() as e:
            raise _compose_error(path, overrides, search, e) from None
    return check_protocol(cfg, what="")  # its keys as genprior-evaluate takes them: runs=2


def _hydra_errors() -> tuple[type[Exception], ...]:
    """What a protocol that does not compose raises (Hydra imported only when a protocol loads)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return HydraException, OmegaConfBaseException


def _compose_error(path: Path, overrides, search: str, e: Exception) -> ConfigError:
    """One line for a protocol that did not compose: the override's fault (naming the keys there
    are) only where there was one and the file composes without it, else the file's own."""
    from hydra import compose

    why = str(e).strip().splitlines()[0]
    if overrides:
        try:
            keys = ", ".join(compose(path.stem, overrides=[search]).keys())
        except _hydra_errors():
            pass
        else:
            return ConfigError(f"bad protocol override ({why}); valid keys: {keys}")
    return ConfigError(f"protocol {path} does not compose ({why}); its defaults can name {', '.join(PROTOCOLS)} "
                       f"or a .yaml beside it")


def check_protocol(cfg: DictConfig, what: str = "protocol") -> DictConfig:
    """Fail on a bad protocol before hours of training, not after. `what` is where its keys
    live on the command line ("protocol" in run.py, "" in genprior-evaluate's key=value)."""
    spec_from(Protocol, cfg, what, strings=False)
    return cfg


# ---------------------------------------------------------------- one network, one run

def train_and_test(model: str, images: torch.Tensor, labels: torch.Tensor, test: tuple[torch.Tensor, torch.Tensor],
                   dataset: str, schedule: DictConfig, seed: int, lr: float | None = None,
                   device: str = "cpu", desc: str = "", checkpoint: Path | None = None) -> float:
    """Train a fresh `model` on (images, labels) with `schedule`; return final-epoch test accuracy."""
    net = train_network(model, images, labels, dataset, schedule, seed, lr, device, desc, checkpoint=checkpoint)
    return _accuracy(net, test, schedule, device)


def train_network(model: str, images: torch.Tensor, labels: torch.Tensor, dataset: str, schedule: DictConfig,
                  seed: int, lr: float | None = None, device: str = "cpu", desc: str = "",
                  views: int = 1, checkpoint: Path | None = None) -> torch.nn.Module:
    """A fresh `model` trained on (images, labels) with `schedule`: init, shuffling and augmentation from `seed`.
    `views` > 1: the items come in groups of that many views of one item (see epoch_order).
    `checkpoint`: a file written after every epoch and resumed from, so a killed run (the full
    train split takes most of an hour on a CPU) goes on where it stopped, to the same network."""
    info = dataset_info(dataset)
    # init as torch.manual_seed(seed) had it, the caller's global RNG untouched (run.py judges curve
    # points in the middle of a distillation); training draws from `g` alone
    net = seeded_net(model, info.channels, info.num_classes, images.shape[-1], seed).to(device)
    g = torch.Generator().manual_seed(seed)  # shuffling and augmentation parameters
    lr = schedule.lr if lr is None else lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay)
    dsa, autocast = _dsa(schedule, info), _autocast(schedule.precision, device)
    x_all, y_all = images.to(device), labels.to(device)
    n, batch = _epoch_size(len(y_all), views, schedule), schedule.batch
    start = _resume(checkpoint, net, opt, g, device) if checkpoint is not None else 0
    forward = compiled_forward(net) if schedule.get("compile", False) else None
    net.train()
    steps = math.ceil(n / batch)
    with progress(total=schedule.epochs * steps, initial=start * steps, desc=desc or model, leave=False,
                  mininterval=1.0) as bar:
        for epoch in range(start, schedule.epochs):
            _decay(opt, lr, epoch, schedule)
            perm = epoch_order(len(y_all), views, schedule, g).to(device)
            loss = train_epoch(net, opt, x_all, y_all, perm, batch, dsa,
                               lambda _: int(torch.randint(2**31 - 1, (1,), generator=g)), autocast, bar.update,
                               forward, schedule.get("standardize", False))
            if not math.isfinite(loss.item()):
                net.diverged_at = epoch  # train_runs reports it; more epochs of NaN change nothing
                break
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if checkpoint is not None:
                write_torch(checkpoint, {"epoch": epoch + 1, "net": net.state_dict(), "optimizer": opt.state_dict(),
                                         "generator": g.get_state()})
    return net


def _resume(checkpoint: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, g: torch.Generator,
            device: str) -> int:
    """Load `checkpoint` into the network, optimizer and generator if it exists; the epoch to start at."""
    if not checkpoint.is_file():
        return 0
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    g.set_state(state["generator"].cpu())  # map_location moved it with the rest; a generator state lives on the CPU
    return state["epoch"]


def train_runs(model: str, sets: list[tuple[torch.Tensor, torch.Tensor]], test: tuple[torch.Tensor, torch.Tensor],
               dataset: str, schedule: DictConfig, seeds: list[int], lr: float | None = None, device: str = "cpu",
               desc: str = "", views: int = 1, run_file: Callable[[int], Path] | None = None
               ) -> tuple[list[float], list[dict]]:
    """Final test accuracies of len(seeds) fresh networks, run r trained on sets[r] from seeds[r],
    and the runs whose loss stopped being finite ({"run", "epoch"}). A diverged run is a result,
    not an error: it stops training, is tested as it is (a network of NaNs scores near chance),
    counts in the mean like every run (dropping it would flatter the set), and is reported, so
    one unstable network (AlexNet on 10 images) does not discard an hour of judging.

    With `schedule.batched`, the runs train together as one vmapped network (torch.func:
    stack_module_state + vmap + functional_call), each keeping its own init, shuffling and
    augmentation, so the result is that of independent runs (a test checks it against
    sequential runs). SGD, momentum and weight decay act elementwise, so one optimizer over
    the stacked parameters is the runs' optimizers side by side. On a GPU this turns a
    launch-bound loop into one stream; on a compute-bound 2-core CPU it was slower
    (bench/results/protocol_speed_cpu.json). Networks with BatchNorm (running statistics
    that vmap cannot update) train one after the other.

    `run_file(r)`: where run r's result is kept once it is trained and tested (one after the
    other only), so a judging killed inside an architecture resumes at its next run: a
    ResNet-18 run on an IPC-10 set is half an hour on a CPU."""
    info = dataset_info(dataset)
    with torch.random.fork_rng(devices=[]):  # a look at the architecture draws nothing from the runs' RNG
        template = build_net(model, info.channels, info.num_classes, sets[0][0].shape[-1])
    if schedule.get("batched", False) and not has_batchnorm(template) and len(seeds) > 1:
        nets = _train_together(model, sets, dataset, schedule, seeds, lr, device, desc, views)
        return tested(nets, test, schedule, device, desc or model)

    def run(r: int) -> dict:
        (x, y), seed = sets[r], seeds[r]
        t0 = time.time()
        net = train_network(model, x, y, dataset, schedule, seed, lr, device, f"{desc} {r + 1}/{len(seeds)}", views)
        return {"accuracy": _accuracy(net, test, schedule, device), "diverged_at": getattr(net, "diverged_at", None),
                "wall_s": round(time.time() - t0, 1)}

    results = [_kept_run(None if run_file is None else run_file(r), lambda r=r: run(r)) for r in range(len(seeds))]
    accs = [res["accuracy"] for res in results]
    diverged = [{"run": r, "epoch": res["diverged_at"]} for r, res in enumerate(results) if res["diverged_at"] is not None]
    _say_diverged(diverged, accs, desc or model)
    return accs, diverged


def _kept_run(path: Path | None, run: Callable[[], dict]) -> dict:
    """One run's result, from `path` if an earlier judging finished it, else run and kept there."""
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    result = run()
    if path is not None:
        write_json(path, result)
    return result


def tested(nets: list[torch.nn.Module], test: tuple[torch.Tensor, torch.Tensor], schedule: DictConfig,
           device: str, what: str) -> tuple[list[float], list[dict]]:
    """Test accuracies of trained networks, and which of them diverged (train_network), each said on stderr."""
    accs = [_accuracy(net, test, schedule, device) for net in nets]
    diverged = [{"run": r, "epoch": net.diverged_at} for r, net in enumerate(nets) if hasattr(net, "diverged_at")]
    _say_diverged(diverged, accs, what)
    return accs, diverged


def _say_diverged(diverged: list[dict], accs: list[float], what: str) -> None:
    for d in diverged:
        tqdm.write(f"{what} run {d['run'] + 1}/{len(accs)}: loss not finite at epoch {d['epoch']}; "
                   f"counted at its accuracy {accs[d['run']] * 100:.2f} %", file=sys.stderr)


def _train_together(model, sets, dataset, schedule, seeds, lr, device, desc, views=1) -> list[torch.nn.Module]:
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    info = dataset_info(dataset)
    nets, gens = [], []
    for seed in seeds:  # each run: its init and its generator, drawn exactly as train_network draws them
        nets.append(seeded_net(model, info.channels, info.num_classes, sets[0][0].shape[-1], seed).to(device).train())
        gens.append(torch.Generator().manual_seed(seed))
    params, buffers = stack_module_state(nets)
    template = copy.deepcopy(nets[0]).to("meta")
    forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))
    lr = schedule.lr if lr is None else lr
    opt = torch.optim.SGD(list(params.values()), lr=lr, momentum=schedule.momentum,
                          weight_decay=schedule.weight_decay)
    dsa, autocast = _dsa(schedule, info), _autocast(schedule.precision, device)
    xs, ys = [x.to(device) for x, _ in sets], [y.to(device) for _, y in sets]
    n, batch, runs = _epoch_size(len(ys[0]), views, schedule), schedule.batch, len(seeds)
    with progress(total=schedule.epochs * math.ceil(n / batch), desc=f"{desc or model} x{runs} together",
                  leave=False, mininterval=1.0) as bar:
        for epoch in range(schedule.epochs):
            _decay(opt, lr, epoch, schedule)
            perms = [epoch_order(len(ys[0]), views, schedule, g).to(device) for g in gens]
            for start in range(0, n, batch):
                xb, yb = [], []
                for x, y, perm, g in zip(xs, ys, perms, gens):
                    idx = perm[start:start + batch]
                    xi = standardized(x[idx]) if schedule.get("standardize", False) else x[idx]
                    if dsa is not None:
                        xi = dsa(xi, int(torch.randint(2**31 - 1, (1,), generator=g)))
                    xb.append(xi)
                    yb.append(y[idx])
                with autocast:
                    logits = forward(params, buffers, torch.stack(xb))
                    # each run's mean loss; their sum has each run's own gradient in its own parameters
                    per_run = F.cross_entropy(logits.flatten(0, 1), torch.cat(yb), reduction="none").view(runs, -1)
                    per_run = per_run.mean(1)
                opt.zero_grad(set_to_none=True)
                per_run.sum().backward()
                opt.step()
                bar.update()
            for r, finite in enumerate(torch.isfinite(per_run.detach()).tolist()):
                if not finite and not hasattr(nets[r], "diverged_at"):
                    nets[r].diverged_at = epoch  # its NaNs stay in its own slice: the other runs go on
    with torch.no_grad():
        for r, net in enumerate(nets):
            for name, p in net.named_parameters():
                p.copy_(params[name][r])
    return nets


def epoch_order(n: int, views: int, schedule: DictConfig, g: torch.Generator) -> torch.Tensor:
    """The items of one epoch, shuffled. A set of `views` consecutive views per item (HaBa's
    bases x hallucinators) trains on all of them (views=all), or, with schedule.views=one,
    on one random view of each item per epoch, as the HaBa paper evaluates its sets."""
    if views == 1 or schedule.get("views", "all") == "all":
        return torch.randperm(n, generator=g)
    groups = n // views
    pick = torch.arange(groups) * views + torch.randint(views, (groups,), generator=g)
    return pick[torch.randperm(groups, generator=g)]


def _epoch_size(n: int, views: int, schedule: DictConfig) -> int:
    return n if views == 1 or schedule.get("views", "all") == "all" else n // views


def _dsa(schedule: DictConfig, info) -> DSA | None:
    return dsa_or_none(schedule.dsa, info.flip_ok)


def _decay(opt, lr: float, epoch: int, schedule: DictConfig) -> None:
    """x0.1 from 0-based epoch `lr_decay_epoch` on (default epochs // 2 + 1: that many epochs at the
    full lr). The DC/DSA/DM reference trains epochs + 1 epochs, decays after epochs // 2 + 2 of them
    and restarts momentum there; one epoch in a thousand apart, kept as it is so that judged rows
    (genprior/evaluate.py kept_row) stay comparable."""
    if epoch == (schedule.lr_decay_epoch or schedule.epochs // 2 + 1):
        for group in opt.param_groups:
            group["lr"] = lr * 0.1


@torch.no_grad()
def test_accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1024,
                  device: str = "cpu", autocast=None, standardize: bool = False) -> float:
    net.eval()
    correct = 0
    for start in range(0, len(labels), batch):
        x = images[start:start + batch].to(device)
        with autocast or torch.autocast(device_type="cpu", enabled=False):
            logits = net(standardized(x) if standardize else x)
        correct += (logits.argmax(1).cpu() == labels[start:start + batch]).sum().item()
    return correct / len(labels)


def _accuracy(net: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor], schedule: DictConfig,
              device: str) -> float:
    """test_accuracy at the schedule's test batch and precision: how every trained network is tested."""
    return test_accuracy(net, *test, batch=schedule.get("test_batch", 1024), device=device,
                         autocast=_autocast(schedule.precision, device), standardize=schedule.get("standardize", False))


def _autocast(precision: str, device: str):
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def stats(accs: list[float]) -> dict:
    """Mean +- population std in percent, as the DC/DM/MTT papers report (np.std)."""
    t = torch.tensor(accs, dtype=torch.float64) * 100
    return {"mean": round(t.mean().item(), 2), "std": round(t.std(unbiased=False).item(), 2),
            "runs": [round(a * 100, 2) for a in accs]}


# ---------------------------------------------------------------- the three things judged

def evaluate_images(images: torch.Tensor, labels: torch.Tensor, dataset: str, protocol: DictConfig,
                    space: str = "normalized", lr: float | None = None, device: str = "cpu",
                    root: str | None = None, label: str = "set", views: int = 1, rows: Path | None = None) -> dict:
    """The protocol on one set: {model: stats and wall_s}. `lr` (a learned one) replaces the
    protocol's; `views`: the set's items come in groups of that many views (epoch_order);
    `rows`: a folder keeping each finished architecture's row (kept_row)."""
    what = {"set": artifacts.tensor_digest(images, labels), "lr": lr, "views": views}
    return _rows(what, [(images, labels)] * protocol.runs, dataset, protocol, space, lr, device, root, label,
                 views, rows)


def random_real(dataset: str, ipc: int, protocol: DictConfig, space: str = "normalized", device: str = "cpu",
                root: str | None = None, resolution: int | None = None, rows: Path | None = None) -> dict:
    """The protocol on random real subsets of `ipc` images per class, a fresh subset per run."""
    pool = load_split(dataset, "train", root, resolution, space=space)
    check_ipc(ipc, pool)
    subsets = [pool.random_subset(ipc, torch.Generator().manual_seed(protocol.seed + r)) for r in range(protocol.runs)]
    what = {"random_real": ipc}  # the subsets follow from the data set, ipc and the protocol's seeds
    return _rows(what, subsets, dataset, protocol, space, None, device, root, f"random ipc{ipc}", rows=rows)


def _rows(what: dict, sets: list, dataset: str, protocol: DictConfig, space: str, lr: float | None, device: str,
          root: str | None, label: str, views: int = 1, rows: Path | None = None) -> dict:
    """{model: row} for `sets` (one (images, labels) per run, run r seeded protocol.seed + r), each
    architecture's row kept under `what` and the protocol (kept_row)."""
    resolution = sets[0][0].shape[-1]
    test = load_split(dataset, "test", root, resolution, space=space)
    test = (test.images, test.labels)
    seeds = [protocol.seed + r for r in range(protocol.runs)]
    out = {}
    for model in protocol.models:
        key = _row_key(what, model, dataset, space, resolution, protocol)
        out[model] = kept_row(rows, key, lambda run_file, m=model: _timed(
            lambda: train_runs(m, sets, test, dataset, protocol, seeds, lr, device, desc=f"{label} {m}", views=views,
                               run_file=run_file)))
    return out


def kept_row(rows: Path | None, key: dict, judge: Callable[[Callable[[int], Path] | None], dict]) -> dict:
    """One architecture's row, trained for once. With a `rows` folder (judged_dir), a finished
    row is written there (atomically) under a digest of everything that decides it, and a later
    call with the same key takes it instead of training again: a judging killed at its fourth
    architecture (cross_arch on a CPU: over an hour) resumes there, and rerunning a finished run
    (a sweep, or the same protocol with more `models`) trains only what is new: every schedule
    key and the protocol's name are in the key, so under another protocol every row trains
    again. A kept row keeps the wall_s it cost when it was trained (a row finished after a kill
    inside it: the seconds of the judging that finished it plus those its runs kept recorded).
    `judge(run_file)` trains the row; `run_file(r)` (None without a folder) is where its run r's
    result waits until the row is written (train_runs), so a kill inside a row loses one run."""
    if rows is None:
        return judge(None)
    path = Path(rows) / f"{key['model']}-{artifacts.digest(key)}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            _drop_run_files(path)  # left by a kill between writing the row and removing them
            return kept["row"]
    earlier = sum(json.loads(run.read_text()).get("wall_s", 0.0) for run in _run_files(path))
    row = judge(lambda r: path.with_name(f"{path.stem}.run{r}.json"))
    if earlier and "wall_s" in row:  # the runs an earlier judging finished count too
        row = {**row, "wall_s": round(row["wall_s"] + earlier, 1)}
    write_json(path, {"key": key, "row": row})
    _drop_run_files(path)
    return row


def _run_files(row: Path) -> list[Path]:
    return sorted(row.parent.glob(f"{row.stem}.run*.json"))


def _drop_run_files(row: Path) -> None:
    for run in _run_files(row):  # its runs' results: in the row now
        run.unlink()


def judged_dir(out: Path) -> Path:
    """Where the rows judged for `out` (a metrics.json) are kept: judged/ beside it, or one
    folder shared by every run, $GENPRIOR_JUDGED_DIR (a row's file name is the digest of all
    that decides it, so sharing is safe): rows outlive their run directories, e.g. on a
    machine whose scratch disk is wiped between jobs, or a benchmark that commits them."""
    shared = os.environ.get("GENPRIOR_JUDGED_DIR")
    return Path(shared) if shared else out.with_name("judged")


def _row_key(what: dict, model: str, dataset: str, space: str, resolution: int, protocol: DictConfig) -> dict:
    """What decides one architecture's row: the images judged, the network (its digest: a changed
    architecture is trained again) and every schedule key (not the list of other models)."""
    schedule = _keyed(OmegaConf.to_container(protocol, resolve=True))
    schedule.pop("models", None)
    return {**what, "model": model, "dataset": dataset, "space": space, "resolution": resolution,
            "net_digest": network_digests([model], dataset, resolution)[model], "schedule": schedule}


# schedule keys added after rows were judged, at the value every earlier row behaved as: left
# out of row and full-data keys there, so those rows still answer for today's protocol
BEHAVED_AS = {"standardize": False}


def _keyed(schedule: dict) -> dict:
    return {k: v for k, v in schedule.items() if not (k in BEHAVED_AS and v in (None, BEHAVED_AS[k]))}


def _timed(runs: Callable[[], tuple[list[float], list[dict]]]) -> dict:
    """stats of the accuracies `runs()` returns (train_runs), the runs that diverged if any, and
    its seconds: what one architecture costs, the figure to plan a cross_arch comparison by."""
    t0 = time.time()
    accs, diverged = runs()
    return {**stats(accs), **({"diverged": diverged} if diverged else {}), "wall_s": round(time.time() - t0, 1)}


def full_data_key(dataset: str, model: str, protocol: DictConfig, space: str, resolution: int) -> dict:
    """What decides a full-data row: the schedule trained (with what it inherits from the protocol:
    precision, compile, ...), the network, the data and the seed."""
    schedule = OmegaConf.to_container(OmegaConf.merge(protocol, protocol.full_data), resolve=True)
    return {"dataset": dataset, "model": model, "space": space, "resolution": resolution, "seed": protocol.seed,
            "schedule": _keyed({f.name: schedule.get(f.name) for f in fields(Schedule)
                                if f.name not in ("batched", "views")}),
            "net_digest": network_digests([model], dataset, resolution)[model]}


def full_data(dataset: str, model: str, protocol: DictConfig, space: str = "normalized", device: str = "cpu",
              root: str | None = None, resolution: int | None = None) -> dict:
    """The full train split under the protocol's large-set schedule; cached by everything that decides it."""
    schedule = OmegaConf.merge(protocol, protocol.full_data)  # full_data's keys over the protocol's
    resolution = resolution or dataset_info(dataset).resolution  # None and 28 are one key (the CLI, run.py)
    key = full_data_key(dataset, model, protocol, space, resolution)
    path = cache_dir() / "full_data" / f"{dataset}-{model}-{artifacts.digest(key)}.json"
    if path.is_file():
        return json.loads(path.read_text())["stats"]
    train = load_split(dataset, "train", root, resolution, space=space)
    test = load_split(dataset, "test", root, resolution, space=space)
    # one checkpoint per run beside the result: a killed baseline resumes at its last epoch
    checkpoints = [path.with_name(f"{path.stem}.run{r}.pt") for r in range(schedule.runs)]
    result = _timed(lambda: tested([train_network(model, train.images, train.labels, dataset, schedule,
                                                  protocol.seed + r, None, device, f"full {model} {r + 1}/{schedule.runs}",
                                                  checkpoint=checkpoints[r]) for r in range(schedule.runs)],
                                   (test.images, test.labels), schedule, device, f"full {model}"))
    write_json(path, {"key": key, "stats": result})
    for c in checkpoints:
        c.unlink(missing_ok=True)
    return result


def network_digests(models, dataset: str, resolution: int | None = None) -> dict[str, str]:
    """The architecture digest (genprior.nets.net_digest) of every network a protocol trains, as
    metrics.json records them: a figure says which networks made it, and a figure judged by an
    earlier network is never taken for today's (bench/distill.py compares them before reusing one)."""
    info = dataset_info(dataset)
    return {m: net_digest(m, info.channels, info.num_classes, resolution or info.resolution) for m in models}


BASELINES = ("random_real", "full_data", "no_augmentation")  # the last two for DD-Ranking's LRS and ARS


def baseline_names(spec) -> tuple[str, ...]:
    """eval.baselines as names: true (all of BASELINES), false (none), one name or a list of them."""
    if isinstance(spec, bool) or spec is None:
        return BASELINES if spec else ()
    names = (spec,) if isinstance(spec, str) else tuple(spec)
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ConfigError(f"unknown baseline {bad[0]!r}; valid: true, false, or a list of {', '.join(BASELINES)}")
    return names


def evaluate_set(saved: SavedSet, protocol: DictConfig, device: str = "cpu", root: str | None = None,
                 baselines=True, source: str = "set", rows: Path | None = None) -> dict:
    """Everything the protocol reports about one saved set, as the dict written to metrics.json.
    `baselines`: which reference rows to add beside it (baseline_names); `rows`: where finished
    architectures' rows are kept (kept_row, judged_dir)."""
    baselines = baseline_names(baselines)
    info = dataset_info(saved.dataset)
    res = saved.images.shape[-1]
    if not (info.resolutions and res in info.resolutions):
        res = info.resolution  # fixed-resolution data sets are judged at their native size
    check_against(saved, info.channels, res, info.num_classes, source)
    t0 = time.time()
    # a set may say what budget it was made for: a factorized one (HaBa) renders more images than
    # its ipc, and the random real baseline must be the budget's
    ipc, views = int(saved.meta.get("ipc", saved.ipc)), int(saved.meta.get("views", 1))
    metrics = {"protocol": protocol.name, "dataset": saved.dataset, "space": saved.space, "ipc": ipc,
               "num_images": len(saved.labels), "views": views, "lr": saved.lr,
               "synthetic": evaluate_images(saved.images, saved.labels, saved.dataset, protocol, saved.space,
                                            saved.lr, device, root, views=views, rows=rows)}
    metrics["wall_s"] = {"synthetic": round(time.time() - t0, 1)}
    if "random_real" in baselines:
        t0 = time.time()
        metrics["random_real"] = random_real(saved.dataset, ipc, protocol, saved.space, device, root, res, rows)
        metrics["wall_s"]["random_real"] = round(time.time() - t0, 1)
    if "full_data" in baselines:
        t0 = time.time()
        metrics["full_data"] = {m: full_data(saved.dataset, m, protocol, saved.space, device, root, res)
                                for m in protocol.models}
        metrics["wall_s"]["full_data"] = round(time.time() - t0, 1)
    if "no_augmentation" in baselines:  # DD-Ranking's ARS: set and random subsets trained without augmentation
        t0 = time.time()
        plain = OmegaConf.merge(protocol, {"dsa": "none"})
        same = protocol.dsa == "none"  # nothing to switch off: the rows above are these
        metrics["no_augmentation"] = {
            "synthetic": metrics["synthetic"] if same else evaluate_images(
                saved.images, saved.labels, saved.dataset, plain, saved.space, saved.lr, device, root,
                label="set, no aug", views=views, rows=rows),
            "random_real": metrics["random_real"] if same and "random_real" in metrics else random_real(
                saved.dataset, ipc, plain, saved.space, device, root, res, rows)}
        metrics["wall_s"]["no_augmentation"] = round(time.time() - t0, 1)
    if "random_real" in baselines:
        from genprior.ddranking import scores

        metrics["summary"] = summarize(metrics)
        metrics["dd_ranking"] = scores(metrics)
    metrics["protocol_config"] = OmegaConf.to_container(protocol, resolve=True)
    metrics["resolution"], metrics["networks"] = res, network_digests(protocol.models, saved.dataset, res)
    if saved.meta.get("prior_digest"):  # the generator it was made with (genprior/synsets/base.py)
        metrics["prior_digest"] = saved.meta["prior_digest"]
    return metrics


def summarize(metrics: dict) -> dict:
    """Gain over a random real subset (DD-Ranking's yardstick) and, with the full-data baseline,
    the share of the random-to-full gap closed."""
    out = {}
    for model, syn in metrics["synthetic"].items():
        rnd = metrics["random_real"][model]["mean"]
        full = metrics["full_data"][model]["mean"] if "full_data" in metrics else None
        gap = full - rnd if full is not None else 0
        out[model] = {"synthetic": syn["mean"], "random_real": rnd, "full_data": full,
                      "gain_over_random": round(syn["mean"] - rnd, 2),
                      "gap_closed": round((syn["mean"] - rnd) / gap, 3) if gap > 0 else None}
    return out


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="genprior-evaluate", description="Judge a synthetic set with an accuracy protocol.")
    p.add_argument("args", nargs="*", help="SET_FILE and/or key=value (protocol=NAME, dataset=, ipc=, space=, "
                                           "and any protocol key: runs=2 epochs=300 ...)")
    p.add_argument("--random-real", action="store_true", help="judge random real subsets (dataset=, ipc=) instead")
    p.add_argument("--full-data", action="store_true", help="only the full train split (dataset=)")
    p.add_argument("--no-baselines", action="store_true", help="skip the baselines (random real, full data, no augmentation)")
    p.add_argument("--out", help="metrics.json path (default: beside the set, or stdout)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-root", default=None, help="where data sets live (else the default places)")
    a = p.parse_args(argv)
    out = None
    try:
        retain_freed_memory()
        check_device(a.device, "--device")
        files, kv = split_args(a.args)
        opts = {k: kv.pop(k) for k in ("protocol", "dataset", "ipc", "space") if k in kv}
        protocol = load_protocol(opts.get("protocol", "dc_convnet"), [f"{k}={v}" for k, v in kv.items()])
        if len(files) > 1:
            raise ConfigError(f"one set file at a time, got {len(files)}: {' '.join(files)}")
        if a.random_real or a.full_data:
            dataset = opts.get("dataset", "fashion_mnist")
            dataset_info(dataset)
            out = Path(a.out) if a.out else None
            if a.full_data:
                metrics = {"dataset": dataset, "protocol": protocol.name,
                           "full_data": {m: full_data(dataset, m, protocol, opts.get("space", "normalized"),
                                                      a.device, a.data_root) for m in protocol.models}}
            else:
                ipc = _int(opts.get("ipc", "10"), "ipc")
                if ipc < 1:
                    raise ConfigError(f"ipc must be >= 1, got {ipc}")
                t0 = time.time()
                metrics = {"dataset": dataset, "protocol": protocol.name, "ipc": ipc,
                           "random_real": random_real(dataset, ipc, protocol, opts.get("space", "normalized"),
                                                      a.device, a.data_root, rows=out and judged_dir(out)),
                           "wall_s": round(time.time() - t0, 1)}
            metrics["protocol_config"] = OmegaConf.to_container(protocol, resolve=True)
            metrics["networks"] = network_digests(protocol.models, dataset)
        else:
            if not files:
                raise ConfigError("give a synthetic set file, or --random-real / --full-data")
            saved = load_set(files[0], opts.get("dataset"), opts.get("space"))
            out = Path(a.out) if a.out else Path(files[0]).with_name("metrics.json")
            metrics = evaluate_set(saved, protocol, a.device, a.data_root, not a.no_baselines, files[0],
                                   rows=judged_dir(out))
    except ConfigError as e:
        print(f"genprior-evaluate: error: {message(e, '--data-root DIR')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genprior-evaluate: stopped by SIGINT (exit 130); {_kept_after_stop(a, out)}", file=sys.stderr)
        return 130
    text = json.dumps(metrics, indent=2)
    if out is None:
        print(text)
    else:
        write_text(out, text + "\n")
        print(f"wrote {out}")
    for model, s in metrics.get("synthetic", metrics.get("random_real", metrics.get("full_data", {}))).items():
        print(f"{model}: {accuracy_text(s)} %")
    return 0


def _kept_after_stop(a, out: Path | None) -> str:
    """What a stopped judging kept for a rerun of the same command to go on from: the finished
    architectures' rows (kept_row, only where there is an --out or a set's metrics.json to keep
    them beside) and the full-data baseline's epochs (full_data's checkpoints, in the cache)."""
    full = cache_dir() / "full_data"
    if a.full_data:
        return f"the finished networks and epochs are kept in {full}: rerun the same command to go on"
    if out is None:  # --random-real without --out, or stopped before a set file was read
        return ("nothing is kept (with --out FILE, every finished architecture is): a rerun starts over"
                if a.random_real else "nothing was judged yet: rerun the same command")
    kept = f"the architectures judged so far are kept in {judged_dir(out)}"
    if not a.random_real and not a.no_baselines:
        kept += f", the full-data baseline's finished epochs in {full}"
    return f"{kept}: rerun the same command to go on"


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


if __name__ == "__main__":
    sys.exit(main())
