"""Distill a synthetic set: the one place where data, synset, objective and protocol meet.

    python genprior/run.py pixel=dm ipc=10
    accelerate launch genprior/run.py pixel=mtt ipc=1
    OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 genprior/run.py pixel=dc ipc=1

The loop, per step:  render (no grad) -> objective loss on a leaf copy of the images ->
dL/dimages -> synset.push_grad (chunked re-render, DESIGN.md section 2) -> sum the
synset's gradients over ranks -> SGD step -> log, checkpoint.

Processes split each step's work units (classes for DC/DM, trajectory segments for
MTT) and sum their gradients, so N processes compute what one process computes. Rank 0
decides the run directory and is the only writer. A rerun with the same run_dir
resumes from its last checkpoint; a run whose loss turns NaN/inf stops and keeps the
last good checkpoint.

Hydra's compose API builds the config (config groups, presets, overrides) rather than
@hydra.main: it leaves the working directory and logging alone and lets a bad choice
be one line with exit code 2.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from genprior.data import check_ipc, load_split, to_unit
from genprior.errors import ConfigError
from genprior.host import cpu_threads, retain_freed_memory

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Keys that may change between a run and its resumption without changing what it computes.
RESUMABLE_KEYS = ("iterations", "checkpoint_every", "log_every", "eval", "protocol", "run_dir", "threads")


class Diverged(RuntimeError):
    pass


# ---------------------------------------------------------------- config

def compose(overrides: list[str]) -> DictConfig:
    """The run's config from configs/ and command-line overrides, with one-line errors."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        try:
            cfg = hydra_compose("config", overrides=overrides)
        except MissingConfigException as e:
            raise ConfigError(_missing_choice(str(e))) from None
        except (HydraException, OmegaConfBaseException) as e:
            first = str(e).strip().splitlines()[0]
            keys = ", ".join(OmegaConf.load(CONFIG_DIR / "config.yaml").keys() - {"defaults"})
            raise ConfigError(f"bad override: {first} (top-level keys: {keys}; groups: "
                              f"{', '.join(_groups())}; add new keys with +key=value)") from None
    for key, low in (("ipc", 1), ("iterations", 0), ("seed", 0), ("chunk", 1), ("checkpoint_every", 1),
                     ("log_every", 1)):
        if not isinstance(cfg[key], int) or cfg[key] < low:
            raise ConfigError(f"{key} must be an integer >= {low}, got {cfg[key]!r}")
    return cfg


def _groups() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())


def _missing_choice(message: str) -> str:
    """Hydra's multi-line 'Could not find' message, as one line naming the valid options."""
    groups = _groups()
    for group in groups:
        if f"'{group}/" in message:
            asked = message.split(f"'{group}/", 1)[1].split("'", 1)[0]
            valid = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
            return f"unknown {group} choice {asked!r}; valid: {', '.join(valid)}"
    return f"{message.strip().splitlines()[0]} (config groups: {', '.join(groups)})"


def fingerprint(cfg: DictConfig) -> dict:
    """The part of the config that decides the result (what a checkpoint must agree with)."""
    d = OmegaConf.to_container(cfg, resolve=True)
    for k in RESUMABLE_KEYS:
        d.pop(k, None)
    return d


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def default_run_dir(cfg: DictConfig) -> Path:
    return Path("runs") / cfg.dataset.name / f"{cfg.synset.kind}-{cfg.objective.kind}-ipc{cfg.ipc}-seed{cfg.seed}"


# ---------------------------------------------------------------- components

def build_synset(cfg: DictConfig, real):
    from genprior.synsets import SYNSETS

    kind = cfg.synset.kind
    if kind not in SYNSETS:
        raise ConfigError(f"unknown synset kind {kind!r}; valid: {', '.join(SYNSETS)}")
    options = {k: v for k, v in OmegaConf.to_container(cfg.synset, resolve=True).items() if k not in ("kind", "optim")}
    if kind == "gan":  # the generator is a file; the synset renders into the data set's value space
        options.update(generator=_load_generator(options.pop("generator"), options.pop("code_dir"),
                                                 options.pop("allow_pickle")),
                       data_space=cfg.dataset.space, data_root=cfg.dataset.root)
    synset = SYNSETS[kind](real, cfg.ipc, seed=cfg.seed, **options)
    if cfg.objective.kind == "mtt":
        synset.learn_lr(cfg.objective.init_lr)
    return synset


def _load_generator(path: str, code_dir: str | None, allow_pickle: bool):
    """On CPU (synset.to(device) moves it): our own format, a foreign name, or an NVlabs pickle."""
    from generators.foreign import load_nvlabs_pickle
    from generators.io import load_generator

    if str(path).endswith(".pkl"):
        if not code_dir:
            raise ConfigError(f"{path} is an NVlabs network pickle: give synset.code_dir=<checkout of the "
                              "repository that wrote it> (and synset.allow_pickle=true if you trust the file)")
        return load_nvlabs_pickle(path, code_dir, allow_pickle)
    return load_generator(_asset(path))


def _asset(path: str) -> str:
    """Relative generator paths resolve against the working directory, else the repository
    (so the shipped assets/ generators work from anywhere)."""
    p = Path(path)
    if p.is_absolute() or Path(str(p) + ".json").exists() or p.exists():
        return str(p)
    repo = CONFIG_DIR.parent / p
    return str(repo) if Path(str(repo) + ".json").exists() or repo.exists() else str(p)


def build_objective(cfg: DictConfig, real, accelerator):
    from genprior.objectives import OBJECTIVES

    o = OmegaConf.to_container(cfg.objective, resolve=True)
    kind = o.pop("kind")
    if kind not in OBJECTIVES:
        raise ConfigError(f"unknown objective kind {kind!r}; valid: {', '.join(OBJECTIVES)}")
    if kind == "dc":
        return OBJECTIVES[kind](real, cfg.ipc, seed=cfg.seed, **o)
    if kind == "dm":
        return OBJECTIVES[kind](real, seed=cfg.seed, **o)
    from genprior.data import cache_dir
    from genprior.experts import ensure_experts, load_experts, spec_from

    e = o.pop("experts")
    directory = e.pop("dir")
    o.pop("init_lr")
    spec = spec_from(dict(e, dataset=cfg.dataset.name, space=cfg.dataset.space, net=o["net"],
                          net_kwargs=o["net_kwargs"] or {}, dsa=o["dsa"]))
    directory = Path(directory) if directory else spec.default_dir(cache_dir())
    ensure_experts(spec, real, directory, accelerator.process_index, accelerator.num_processes, accelerator.device)
    accelerator.wait_for_everyone()
    return OBJECTIVES[kind](real, load_experts(directory, spec), seed=cfg.seed, **o)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, step: int, cfg, synset, optimizer, objective) -> None:
    state = {"step": step, "config": fingerprint(cfg), "synset": synset.state_dict(),
             "optimizer": optimizer.state_dict(), "objective": objective.state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint intact


def check_checkpoint(path: Path, cfg) -> dict | None:
    """The checkpoint in run_dir, if any, after making sure it belongs to this config."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path} is not a readable checkpoint ({type(e).__name__}); remove it to start over") from None
    have, want = _flat(state["config"]), _flat(fingerprint(cfg))
    diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
    if diff:
        shown = ", ".join(f"{k}={have.get(k)!r}->{want.get(k)!r}" for k in diff[:4])
        raise ConfigError(f"{path.parent} holds a run with another config ({shown}{' ...' if len(diff) > 4 else ''}); "
                          f"pass another run_dir= or remove it")
    return state


# ---------------------------------------------------------------- the loop

def distill(cfg: DictConfig, accelerator) -> Path:
    from accelerate.utils import broadcast_object_list
    from tqdm import tqdm

    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    run_dir = [str(cfg.run_dir or default_run_dir(cfg)) if main else None]
    broadcast_object_list(run_dir)  # rank 0 decides, so `${now:}`-style names agree across ranks
    run_dir = Path(run_dir[0])
    ckpt_path = run_dir / "checkpoint.pt"
    state = check_checkpoint(ckpt_path, cfg)  # before anything is written
    if cfg.eval.enabled:
        from genprior.evaluate import baseline_names, check_protocol

        check_protocol(cfg.protocol)  # a typo in the protocol should not wait for the end of distillation
        baseline_names(cfg.eval.baselines)
    if cfg.eval.images.enabled:
        from genprior.metrics.features import inception_path

        inception_path()  # nor should a missing FID network

    t_setup = time.time()
    d = cfg.dataset
    real = load_split(d.name, "train", d.root, d.resolution, space=d.space)
    check_ipc(cfg.ipc, real)
    device = accelerator.device
    synset = build_synset(cfg, real).to(device)
    optimizer = torch.optim.SGD(synset.param_groups(OmegaConf.to_container(cfg.synset.optim, resolve=True)))
    objective = build_objective(cfg, real, accelerator)
    start = 0
    if state is not None:
        synset.load_state_dict(state["synset"])
        optimizer.load_state_dict(state["optimizer"])
        objective.load_state_dict(state["objective"])
        start = state["step"]
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log = _Log(run_dir, main)
    if start:
        log.drop_curve_after(start)  # steps past the checkpoint were lost with the process; they are redone
    log(f"{'resuming at' if start else 'starting'} step {start}/{cfg.iterations} in {run_dir} "
        f"({world} process{'es' if world > 1 else ''}, {accelerator.mixed_precision} precision, {device}"
        f"{f', {torch.get_num_threads()} threads' if device.type == 'cpu' else ''}); "
        f"storage {synset.storage()}; set-up {time.time() - t_setup:.0f}s"
        f"{' (includes building missing experts)' if cfg.objective.kind == 'mtt' else ''}")

    # This rank's share of each step's work. What every rank needs whole (DC's network
    # following the set between steps) each rank computes alike from identical inputs.
    units = list(range(objective.units()))[rank::world]
    params = [p for p in synset.parameters() if p.requires_grad]
    last_saved = completed = start
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not main,
               desc=f"{cfg.synset.kind}+{cfg.objective.kind}", dynamic_ncols=True)
    t0 = time.time()
    try:
        for step in bar:
            loss = distill_step(synset, objective, step, units, cfg.chunk, accelerator.autocast)
            loss, finite = _sum_over_ranks(loss, params, world)
            if not finite:
                raise Diverged(f"loss {loss:.4g} or its gradient is not finite at step {step}: the synset's lr is "
                               f"too large or an expert trajectory is degenerate; last good checkpoint: "
                               f"{ckpt_path} (step {last_saved})")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            completed = step + 1
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if (step + 1) % cfg.log_every == 0 or step == start:
                log(f"step {step + 1} loss {loss:.6g} {(time.time() - t0) / (step + 1 - start):.3f}s/it",
                    curve={"step": step + 1, "loss": loss})
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.iterations:
                if main:
                    save_checkpoint(ckpt_path, step + 1, cfg, synset, optimizer, objective)
                last_saved = step + 1
            if cfg.eval.every and (step + 1) % cfg.eval.every == 0 and main:
                log(f"step {step + 1} curve accuracy", curve={"step": step + 1, **_curve_point(cfg, synset, device)})
    except KeyboardInterrupt:  # keep every finished step
        if main and completed > last_saved:
            save_checkpoint(ckpt_path, completed, cfg, synset, optimizer, objective)
        log(f"interrupted after steps {start}-{completed} ({time.time() - t0:.1f}s); checkpoint at step {completed} "
            f"in {ckpt_path}: rerun to resume")
        raise
    finally:
        bar.close()
    log(f"distilled steps {start}-{cfg.iterations} ({cfg.iterations - start} steps) in {time.time() - t0:.1f}s")
    if main:
        export(cfg, synset, run_dir, log)
    accelerator.wait_for_everyone()
    return run_dir


def distill_step(synset, objective, step: int, units: list[int], chunk: int, autocast) -> torch.Tensor:
    """One step's gradients into the synset (not yet summed over ranks); returns this rank's loss.

    The images the objective sees are a leaf tensor rendered without a graph; its
    gradient goes back into the synset chunk by chunk (DESIGN.md section 2)."""
    images = synset.render_all(chunk).requires_grad_(True)
    with autocast():
        loss = objective(images, synset.labels, step, units, synset.lr) if units else images.new_zeros(())
    if loss.requires_grad:
        loss.backward()
    if images.grad is not None:
        synset.push_grad(images.grad, chunk)
    return loss.detach()


def _sum_over_ranks(loss: torch.Tensor, params: list[torch.nn.Parameter], world: int) -> tuple[float, bool]:
    """Sum the loss and the synset's gradients over ranks in one flat all-reduce.

    Each rank computed its share of the units, so the sum is the full gradient. Returns
    the total loss and whether it and every gradient are finite."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([loss.float().reshape(1)] + [g.reshape(-1).float() for g in grads])
    if world > 1:
        torch.distributed.all_reduce(flat)
    offset = 1
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
    return flat[0].item(), bool(torch.isfinite(flat).all())


def _curve_point(cfg, synset, device) -> dict:
    from genprior.evaluate import evaluate_images, load_protocol

    protocol = load_protocol(cfg.eval.curve_protocol)  # a named protocol beside the final one
    with torch.no_grad():
        images = synset.render_all(cfg.chunk).cpu()
    lr = None if synset.lr is None else synset.lr.item()
    acc = evaluate_images(images, synset.labels.cpu(), cfg.dataset.name, protocol, cfg.dataset.space, lr,
                          str(device), cfg.dataset.root)
    return {model: s["mean"] for model, s in acc.items()}


def export(cfg, synset, run_dir: Path, log) -> None:
    """The set (safetensors, and the latents for latent synsets), PNGs, grid.png, metrics.json."""
    from safetensors.torch import save_file

    from genprior.data import dataset_info
    from genprior.evaluate import check_protocol, evaluate_set
    from genprior.export import save_grid, save_image_folder
    from genprior.setfile import load_set, save_set

    with torch.no_grad():
        images = synset.render_all(cfg.chunk).float().cpu()
    labels = synset.labels.cpu()
    lr = None if synset.lr is None else synset.lr.item()
    d = cfg.dataset
    set_path = save_set(run_dir / "synset.safetensors", images, labels, d.name, d.space, lr,
                        meta={"synset": cfg.synset.kind, "objective": cfg.objective.kind, "ipc": cfg.ipc,
                              "iterations": cfg.iterations, "storage": synset.storage()})
    if cfg.synset.kind != "pixel":
        save_file({k: v.detach().cpu().contiguous() for k, v in synset.state_dict().items()},
                  str(run_dir / "latents.safetensors"))
    info = dataset_info(d.name)
    unit = to_unit(images, d.name, d.space, d.root)
    save_image_folder(unit, labels, info.class_names, run_dir / "images")
    save_grid(unit, labels, info.num_classes, run_dir / "grid.png")
    log(f"wrote {set_path}, {run_dir / 'grid.png'}, {run_dir / 'images'}/")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    metrics = {}
    if cfg.eval.enabled:
        t0 = time.time()
        protocol = check_protocol(cfg.protocol)
        metrics = evaluate_set(load_set(set_path), protocol, device, d.root, cfg.eval.baselines, str(set_path))
        def acc(rows: dict) -> str:
            return ", ".join(f"{m} {s['mean']:.2f} +- {s['std']:.2f}" for m, s in rows.items()) + " %"

        log(f"{protocol.name}: {acc(metrics['synthetic'])} ({time.time() - t0:.0f}s)")
        for name in ("random_real", "full_data"):
            if name in metrics:
                log(f"  {name.replace('_', ' ')}: {acc(metrics[name])}")
    if cfg.eval.images.enabled:
        from genprior.metrics import image_metrics, summary_lines

        im = cfg.eval.images
        metrics["images"] = image_metrics(unit, labels, d.name, "test", tuple(im.spaces), im.lpips, d.root, device,
                                          limit=im.limit)
        for line in summary_lines(metrics["images"]):
            log(line)
    if metrics:
        metrics["storage"] = synset.storage()
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        log(f"wrote {run_dir / 'metrics.json'}")


class _Log:
    """log.txt (human) and curve.jsonl (machine) in the run directory, written by rank 0 only."""

    def __init__(self, run_dir: Path, main: bool):
        self.run_dir, self.main = run_dir, main

    def __call__(self, line: str, curve: dict | None = None) -> None:
        if not self.main:
            return
        from tqdm import tqdm

        tqdm.write(line)
        with open(self.run_dir / "log.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        if curve is not None:
            with open(self.run_dir / "curve.jsonl", "a") as f:
                f.write(json.dumps(curve) + "\n")

    def drop_curve_after(self, step: int) -> None:
        path = self.run_dir / "curve.jsonl"
        if not self.main or not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)  # atomic: a kill here leaves the old curve or the new one, never half of it


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        groups = {p.name: sorted(q.stem for q in p.glob("*.yaml")) for p in sorted(CONFIG_DIR.iterdir()) if p.is_dir()}
        print("config groups:", "; ".join(f"{g}={'|'.join(o)}" for g, o in groups.items()))
        return 0
    from accelerate import Accelerator

    retain_freed_memory()  # the same buffers every step: keep them mapped (genprior/host.py)
    try:
        cfg = compose(argv)
        cpu_threads(cfg.get("threads"))  # accelerate launch would leave a CPU run on one thread
        # Accelerate picks gloo (MULTI_CPU) for several ranks only when told cpu=True;
        # without it, ranks launched on a GPU-less machine would each run alone.
        cpu_ranks = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu_ranks or None)
        distill(cfg, accelerator)
    except ConfigError as e:
        print(f"genprior.run: error: {e}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"genprior.run: diverged: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
