"""Expert trajectories for MTT: networks trained on real data, snapshotted every epoch.

One safetensors file per expert holds its trajectory [epochs + 1, P] (flattened
parameters at the start and after every epoch), and `manifest.json` beside them holds
everything that decided them (data set, value space, network, schedule, seed). A run
that asks for experts with another manifest is refused rather than silently matched
against the wrong trajectories.

Snapshots are copies (`torch.cat` of the parameters): the original MTT code on CPU
stores aliases of the live weights, so every "epoch" is the final one and the
normalized distance divides by zero.

Cheap experts: `images_per_epoch` makes an "epoch" (one snapshot interval) a random
subset of the train split, so a trajectory of short, matchable segments costs minutes
instead of hours on a CPU. It is part of the manifest.

    python -m genprior.experts dataset=fashion_mnist num_experts=5

builds the buffer `pixel=mtt` uses: the command line starts from the run's defaults
(configs/objective/mtt.yaml, `experts:`), so a buffer built by hand is the one a run finds.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors.torch import load_file

from genprior import artifacts, options
from genprior.augment import dsa_or_none
from genprior.data import DATASETS, Split, cache_dir, load_split
from genprior.errors import ConfigError, Diverged, exit_status
from genprior.files import save_safetensors
from genprior.host import check_device, retain_freed_memory
from genprior.nets import net_digest
from genprior.objectives.common import fresh_net
from genprior.options import option
from genprior.progress import progress as progress_bar
from genprior.rng import derive_seed, seeded
from genprior.training import train_epoch

FORMAT = "genprior.experts/1"
STORAGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass
class ExpertSpec:
    dataset: str = "fashion_mnist"
    space: str = option("normalized", choices=("normalized", "zca"))  # experts must see what the set will be
    resolution: int | None = option(None, min=1)  # None: the data set's own
    net: str = "convnet"
    net_kwargs: dict = field(default_factory=dict)
    epochs: int = option(8, min=1)  # the defaults are configs/objective/mtt.yaml's (run_defaults reads them)
    lr: float = option(0.01, above=0)  # plain SGD, no momentum: the student unrolls plain SGD too
    batch: int = option(256, min=1)
    dsa: str = "color_crop_cutout_flip_scale_rotate"
    images_per_epoch: int | None = option(10000, min=1)  # None: the whole split each epoch
    seed: int = option(0, min=0)
    precision: str = option("fp32", choices=("fp32", "bf16"))  # training autocast
    num_experts: int = option(5, min=1)  # not part of the manifest's identity: more experts extend a buffer
    storage: str = option("fp32", choices=tuple(STORAGE_DTYPES))  # on disk

    def identity(self) -> dict:
        """What must match for two buffers to be interchangeable: the fields, and the network's
        architecture itself (genprior.nets.net_digest), so a change of the network is a new buffer."""
        d = asdict(self)
        d.pop("num_experts")
        resolution = d.pop("resolution")
        d["format"] = FORMAT
        if self.dataset in DATASETS:  # a registered data set: its channels and resolution build the net
            info = DATASETS[self.dataset]
            resolution = resolution or info.resolution
            if resolution != info.resolution:  # (at its own, the identity of buffers built before this key)
                d["resolution"] = resolution
            d["net_digest"] = net_digest(self.net, info.channels, info.num_classes, resolution, **self.net_kwargs)
        elif resolution:
            d["resolution"] = resolution
        return d

    def default_dir(self, root: Path) -> Path:
        return artifacts.default_dir(root, "experts", f"{self.dataset}-{self.net}", self.identity())


def flat_params(net: torch.nn.Module) -> torch.Tensor:
    """All parameters as one new vector: a copy, never a view of the live weights."""
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).float().cpu()


def train_expert(spec: ExpertSpec, real: Split, index: int, device="cpu", progress: bool = True) -> torch.Tensor:
    """One expert's trajectory [epochs + 1, P]."""
    net = fresh_net(spec.net, real, derive_seed(spec.seed, index), device, **spec.net_kwargs)
    opt = torch.optim.SGD(net.parameters(), lr=spec.lr)
    dsa = dsa_or_none(spec.dsa, real.info.flip_ok)
    per_epoch = min(spec.images_per_epoch or len(real), len(real))
    autocast = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=spec.precision == "bf16")
    snapshots = [flat_params(net)]
    steps = spec.epochs * math.ceil(per_epoch / spec.batch)
    with progress_bar(total=steps, desc=f"expert {index}", leave=False, enabled=progress) as bar:
        for epoch in range(spec.epochs):
            g = seeded(spec.seed, index, epoch)
            order = torch.randperm(len(real), generator=g)[:per_epoch]
            loss = train_epoch(net, opt, real.images, real.labels, order, spec.batch, dsa,
                               lambda start: derive_seed(spec.seed, index, epoch, start), autocast, bar.update)
            if not math.isfinite(loss.item()):
                raise Diverged(f"expert {index} diverged in epoch {epoch}: lower the experts' lr, now {spec.lr} "
                               f"(objective.experts.lr= in a run, lr= here); the experts before it are kept")
            snapshots.append(flat_params(net))
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return torch.stack(snapshots)


def expert_path(directory: Path, index: int) -> Path:
    return directory / f"expert_{index:03d}.safetensors"


def ensure_experts(spec: ExpertSpec, real: Split, directory: Path, rank: int = 0, world: int = 1,
                   device="cpu") -> int:
    """Build the experts that are missing (how many: the return value); rank r builds every
    world-th one. Call a barrier after.

    A buffer is an artifact built piece by piece (genprior/artifacts.py): each expert is
    written atomically, so a killed build keeps the experts it finished."""
    # the same manifest from every rank: the last atomic rename wins
    artifacts.open_manifest(directory, spec.identity(), "expert buffer", {"num_experts": spec.num_experts})
    missing = [i for i in range(spec.num_experts) if not expert_path(directory, i).is_file()]
    mine = missing[rank::world]
    for i in progress_bar(mine, desc=f"building experts in {directory}", enabled=bool(mine)):
        trajectory = train_expert(spec, real, i, device)
        # atomic: a killed build never leaves a half-written expert behind
        save_safetensors({"trajectory": trajectory.to(STORAGE_DTYPES[spec.storage])}, expert_path(directory, i),
                         {"format": FORMAT, "index": str(i)})
    return len(missing)


def load_experts(directory: Path, spec: ExpertSpec) -> list[torch.Tensor]:
    """Trajectories [epochs + 1, P] as float32, after checking they are what the run needs."""
    if not (directory / artifacts.MANIFEST).is_file():
        raise ConfigError(f"no expert buffer in {directory} (no manifest.json); build it with "
                          f"python -m genprior.experts or let the run build it")
    artifacts.check_manifest(directory, spec.identity(), "expert buffer")
    out = []
    for i in range(spec.num_experts):
        path = expert_path(directory, i)
        if not path.is_file():
            raise ConfigError(f"expert {i} missing in {directory}: build with python -m genprior.experts")
        t = load_file(str(path))["trajectory"].float()
        if t.shape[0] != spec.epochs + 1:
            raise ConfigError(f"{path} holds {t.shape[0] - 1} epochs, manifest says {spec.epochs}")
        if not torch.isfinite(t).all():
            raise ConfigError(f"{path} holds NaN/inf parameters: the expert diverged; rebuild it with a lower lr")
        still = [e for e in range(spec.epochs) if torch.equal(t[e], t[e + 1])]
        if still:  # MTT would divide by ||theta_t - theta_t+M|| = 0 and turn the images to NaN
            raise ConfigError(f"{path} is degenerate: epochs {still[0]} and {still[0] + 1} hold identical "
                              f"parameters (aliased snapshots?); rebuild it")
        out.append(t)
    return out


def expert_spec(items: dict, what: str = "", strings: bool = True, also_valid: tuple[str, ...] = ()) -> ExpertSpec:
    """An ExpertSpec from key=value strings or a config mapping, with one-line errors
    (`also_valid`: the other keys the caller takes, named in the error)."""
    return options.spec_from(ExpertSpec, items, what, also_valid=also_valid, strings=strings)


CLI_OPTIONS = ("dir", "data_root", "device")


def run_defaults() -> dict:
    """The experts a run builds by default (configs/objective/mtt.yaml), less where they go."""
    from omegaconf import OmegaConf

    from genprior.shipped import CONFIG_DIR

    experts = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "objective" / "mtt.yaml").experts)
    experts.pop("dir", None)
    return experts


def main(argv: list[str] | None = None) -> int:
    """python -m genprior.experts key=value ... [dir=PATH]: build (or extend) an expert buffer."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        defaults = ExpertSpec(**run_defaults())
        print("options:", ", ".join(f"{f.name}={getattr(defaults, f.name)!r}" for f in fields(ExpertSpec)),
              "dir=PATH data_root=PATH device=cpu|cuda")
        return 0
    def work():
        retain_freed_memory()
        items = options.key_values(argv)
        directory, root = items.pop("dir", None), items.pop("data_root", None)
        device = check_device(items.pop("device", "cuda" if torch.cuda.is_available() else "cpu"))
        spec = expert_spec({**run_defaults(), **items}, also_valid=CLI_OPTIONS)
        real = load_split(spec.dataset, "train", root, spec.resolution, space=spec.space)
        directory = Path(directory) if directory else spec.default_dir(cache_dir())
        ensure_experts(spec, real, directory, device=device)
        print(f"{spec.num_experts} experts in {directory}")

    return exit_status("genprior.experts", work, "data_root=DIR",
                       stopped="the finished experts are kept: rerun to go on")


if __name__ == "__main__":
    sys.exit(main())
