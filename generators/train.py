"""Train the project's own class-conditional generators on a genprior data set.

    python -m generators.train arch=stylegan2 dataset=fashion_mnist steps=8000 batch=64 \
        out=runs/generators/my_stylegan2
    python -m generators.train arch=unet dataset=fashion_mnist steps=8000 out=assets/generators/fashion_mnist_unet

One loop (`train`) for every family; a family brings its spec and its trainer (the
training state as named parts, and one step). The GANs are here; diffusion models
(arch=unet) are generators/train_diffusion.py.

GANs: non-saturating logistic GAN loss, lazy R1 on reals (every r1_every steps, weighted by
r1_every, added to that step's D loss: one D step either way, so Adam's lr and betas stay), Adam
(betas (0, 0.99) for StyleGAN2, (0.5, 0.999) for DCGAN), and an EMA of the generator's
weights, which is the generator that gets saved. StyleGAN2 batches come in groups of 4 images
of one class (class_groups), the groups its discriminator's minibatch std is taken over.

Reproducible and resumable: every random draw of step s (real batch, z, StyleGAN2's noise)
comes from seeds derived from (seed, s) (genprior.rng), so a checkpoint needs no RNG state
and a resumed run equals an uninterrupted one. A checkpoint (G, D, G_ema, both optimizers,
step, wall time) is written atomically every checkpoint_every steps to ckpt=PATH (default
runs/generators/<out name>.ckpt.pt); rerunning the same command resumes from it, and a
larger steps= extends a finished run.

At the end: the EMA generator in its family's format (GANs: <out>.safetensors + <out>.json,
generators.io; diffusion: a diffusers folder <out>/), with the command, steps, wall time and
FID if computed, and <out>.png, a sample grid with one row per class.
FID/KID (fid_images=N > 0) come from genprior.metrics, against the data set's test split.
"""
from __future__ import annotations

import copy
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from generators.base import Generator, randn
from generators.dcgan import DCGANDiscriminator
from generators.ema import update_ema
from generators.io import GENERATORS, build_generator, save_generator
from generators.stylegan2 import StyleGAN2Discriminator
from genprior import options
from genprior.data import Split, load_split, to_unit
from genprior.errors import ConfigError, Diverged, exit_status
from genprior.files import write_torch
from genprior.host import check_device, retain_freed_memory
from genprior.progress import progress as progress_bar
from genprior.rng import derive_seed, seeded

FORMAT = "genprior.generator-train/1"

# per architecture: its discriminator, optimizer and regularization defaults, the generator
# kwargs it trains by default (under the user's generator_kwargs), and how the generator is
# called while training (StyleGAN2 draws fresh noise; decoding elsewhere is const).
# StyleGAN2's defaults are the recipe of the shipped generator (assets/README.md: bilinear
# upsampling and 2 mapping layers took FID 141.7 to 73.6 at 4000 steps); the class's own
# defaults stay as they were, so a JSON written before these keys existed still loads as trained.
ARCHS = {
    "stylegan2": dict(discriminator=StyleGAN2Discriminator, lr=0.0025, betas=(0.0, 0.99), r1_gamma=0.01,
                      class_groups=4, generator_kwargs={"upsample": "bilinear", "mapping_layers": 2},
                      train_kwargs={"noise_mode": "random"}),
    "dcgan": dict(discriminator=DCGANDiscriminator, lr=0.0002, betas=(0.5, 0.999), r1_gamma=0.1,
                  class_groups=1, generator_kwargs={}, train_kwargs={}),
}
assert set(ARCHS) == set(GENERATORS)


@dataclass
class TrainSpec:
    arch: str = "stylegan2"
    dataset: str = "fashion_mnist"
    resolution: int | None = options.option(None, min=8)  # None: the data set's native resolution (load_split: >= 8)
    steps: int = options.option(20000, min=0)  # not part of the identity: a larger value extends a run
    batch: int = options.option(64, min=1)
    lr: float | None = options.option(None, above=0)  # None: the arch's default (ARCHS), for G and D
    betas: list | None = options.option(None, min=0, below=1)  # Adam's two betas
    r1_gamma: float | None = options.option(None, min=0)
    r1_every: int = options.option(16, min=1)  # lazy R1: penalize every k-th D step with weight k
    # batches as groups of this many images of one class (None: the arch's default). StyleGAN2's
    # discriminator takes its minibatch std over the same groups, so that feature measures
    # *within-class* variety and a generator that renders one image per class is caught; with
    # labels drawn independently (1) a group mixes classes and the std only sees class changes.
    class_groups: int | None = options.option(None, min=1)
    ema_kimg: float = options.option(10.0, min=0)  # EMA half-life in thousands of images ...
    ema_rampup: float = options.option(0.05, min=0)  # ... but at most this fraction of the images seen so far
    seed: int = options.option(0, min=0)  # genprior.rng derives every draw from it: a SeedSequence takes no negative
    generator_kwargs: dict = field(default_factory=dict)  # over the arch's (ARCHS), e.g. {"channel_base": 512}
    discriminator_kwargs: dict = field(default_factory=dict)

    def resolved(self) -> "TrainSpec":
        """Arch defaults filled in, so the identity records the numbers actually used."""
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown generator architecture {self.arch!r}; valid: {', '.join(ARCHS)}")
        d = ARCHS[self.arch]
        if self.betas is not None and len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers in [0, 1) (Adam's), got {self.betas}")
        return TrainSpec(**{**asdict(self), "lr": self.lr if self.lr is not None else d["lr"],
                            "betas": list(self.betas if self.betas is not None else d["betas"]),
                            "r1_gamma": self.r1_gamma if self.r1_gamma is not None else d["r1_gamma"],
                            "class_groups": self.class_groups if self.class_groups is not None else d["class_groups"],
                            "generator_kwargs": {**d["generator_kwargs"], **self.generator_kwargs}})

    def identity(self) -> dict:
        d = asdict(self)
        d.pop("steps")
        d["format"] = FORMAT
        return d

    @property
    def trainer(self):
        """The family's training state and step (GANs: G, D, the EMA, two optimizers)."""
        return GanTrainer


def build(spec: TrainSpec, real: Split):
    """(G, D) for the data set's channels, resolution and classes."""
    resolution = real.images.shape[-1]
    common = dict(resolution=resolution, channels=real.info.channels, num_classes=real.info.num_classes)
    G = build_generator(spec.arch, **common, **spec.generator_kwargs)
    extra = {"mbstd_group": spec.class_groups} if spec.arch == "stylegan2" and spec.class_groups > 1 else {}
    try:
        D = ARCHS[spec.arch]["discriminator"](**common, **{**extra, **spec.discriminator_kwargs})
    except TypeError as e:
        raise ConfigError(f"{spec.arch} discriminator: {e}") from None
    return G, D


def optimizers(spec: TrainSpec, G, D):
    # One lr and betas for both. (StyleGAN2 shrinks D's by k / (k + 1) because its lazy R1 is a
    # separate optimizer step every k steps; here R1 joins that step's loss, so D takes one step
    # per iteration either way. The generators shipped before this took D at 16/17 of the lr; a
    # resumed checkpoint keeps the lr and betas its optimizer state holds.)
    opt_G = torch.optim.Adam(G.parameters(), lr=spec.lr, betas=tuple(spec.betas), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=spec.lr, betas=tuple(spec.betas), eps=1e-8)
    return opt_G, opt_D


def train_step(step: int, spec: TrainSpec, G, D, G_ema, opt_G, opt_D, real_images, real_labels,
               table: tuple | None = None) -> dict:
    """One D step (with R1 every r1_every steps) and one G step, then the EMA update."""
    g = seeded(spec.seed, step)
    torch.manual_seed(derive_seed(spec.seed, step, 1))  # StyleGAN2's random noise draws from the global RNG
    device = real_images.device
    idx = batch_indices(g, spec, real_labels, table).to(device)
    real, labels = real_images[idx], real_labels[idx]
    z_d = randn((spec.batch, G.z_dim), g, device)
    z_g = randn((spec.batch, G.z_dim), g, device)
    kw = ARCHS[spec.arch]["train_kwargs"]
    logs = {}

    # D: softplus(D(fake)) + softplus(-D(real)), plus gamma/2 * ||dD(real)/dreal||^2 on R1 steps
    r1_step = spec.r1_gamma > 0 and step % spec.r1_every == 0
    with torch.no_grad():
        fake = G.decode(z_d, labels, "z", **kw)
    real = real.detach().requires_grad_(r1_step)
    logits_real, logits_fake = D(real, labels), D(fake, labels)
    loss_d = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
    if r1_step:
        grad, = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
        r1 = grad.square().sum(dim=(1, 2, 3)).mean()
        loss_d = loss_d + r1 * (spec.r1_gamma / 2 * spec.r1_every)
        logs["r1"] = r1.item()
    opt_D.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_D.step()

    # G: softplus(-D(G(z))), D frozen so no D parameter grads are computed
    D.requires_grad_(False)
    loss_g = F.softplus(-D(G.decode(z_g, labels, "z", **kw), labels)).mean()
    opt_G.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_G.step()
    D.requires_grad_(True)

    update_ema(G_ema, G, (step + 1) * spec.batch, spec.batch, spec.ema_kimg, spec.ema_rampup)
    logs.update(d=loss_d.item(), g=loss_g.item(), real=logits_real.mean().item(), fake=logits_fake.mean().item())
    return logs


def class_table(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices sorted by class, where class c starts in them, how many it has); once per run."""
    labels = labels.cpu()
    counts = torch.bincount(labels)
    return torch.argsort(labels, stable=True), torch.cumsum(counts, 0) - counts, counts


def batch_indices(g: torch.Generator, spec: TrainSpec, labels: torch.Tensor,
                  table: tuple | None = None) -> torch.Tensor:
    """spec.batch random training indices. With class_groups k > 1, image i has the class of
    anchor i % (batch / k): minibatch_std's groups (strided the same way) are then one class each.
    Anchors are random images, so classes keep the data set's frequencies. `table`: class_table(labels)."""
    k = spec.class_groups
    if k == 1:
        return torch.randint(len(labels), (spec.batch,), generator=g)
    order, starts, counts = table if table is not None else class_table(labels)
    classes = labels.cpu()[torch.randint(len(labels), (spec.batch // k,), generator=g)].repeat(k)
    pick = (torch.rand(spec.batch, generator=g) * counts[classes]).long()
    return order[starts[classes] + pick]


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, identity: dict, step: int, wall: float, parts: dict) -> None:
    """Every named part's state (modules, optimizers) with the run's identity, step and wall time."""
    state = {"identity": json.dumps(identity, sort_keys=True), "step": step, "wall": wall,
             **{name: part.state_dict() for name, part in parts.items()}}
    write_torch(path, state)  # a run killed mid-write keeps its previous checkpoint


def load_checkpoint(path: Path, identity: dict, parts: dict) -> tuple[int, float]:
    """Restore every named part; (step, wall seconds so far), or (0, 0) without a checkpoint."""
    if not path.is_file():
        return 0, 0.0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"checkpoint {path} does not load ({type(e).__name__}); delete it to start over") from None
    if not isinstance(state, dict) or "identity" not in state or not set(parts) <= state.keys():
        missing = ["identity", *parts] if not isinstance(state, dict) else \
            [k for k in ("identity", *parts) if k not in state]
        raise ConfigError(f"checkpoint {path} is not a generator training checkpoint (no {', '.join(missing)}); "
                          f"pass ckpt=OTHER_PATH or delete it")
    have = json.loads(state["identity"])
    diff = [f"{k}: checkpoint {have.get(k)!r}, now {identity[k]!r}" for k in identity if have.get(k) != identity[k]]
    if diff:
        raise ConfigError(f"checkpoint {path} is another run ({'; '.join(diff)}); pass ckpt=OTHER_PATH or delete it")
    for name, part in parts.items():
        try:
            part.load_state_dict(state[name])
        except (RuntimeError, KeyError, ValueError) as e:  # a checkpoint of an older module layout
            raise ConfigError(f"checkpoint {path}: its {name} does not fit this code's "
                              f"({str(e).strip().splitlines()[0][:120]}); pass ckpt=OTHER_PATH or delete it") from None
    return int(state["step"]), float(state["wall"])


# ---------------------------------------------------------------- outputs

@torch.no_grad()
def sample_grid(G: Generator, path: Path, per_class: int = 10, seed: int = 0) -> Path:
    """One row per class (8 x 8 when unconditional), fixed latents, PNG (genprior.export's grid)."""
    from genprior.export import save_grid

    rows = G.num_classes or 8
    labels = torch.arange(rows).repeat_interleave(per_class if G.num_classes else 8)
    z = G.sample_latents(labels, "z", torch.Generator().manual_seed(seed))
    images = G.decode(z, labels.to(z.device), "z")
    unit = ((images.float().cpu() + 1) / 2).clamp(0, 1)
    return save_grid(unit, labels, rows, path, max_per_class=len(labels) // rows)


@torch.no_grad()
def generated_unit(G: Generator, n: int, seed: int = 1, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """n images in [0, 1] with their labels, classes balanced (round-robin), for FID."""
    labels = torch.arange(n) % max(G.num_classes, 1)
    g = torch.Generator().manual_seed(seed)
    out = [G.decode(G.sample_latents(lab, "z", g), lab.to(G._device()), "z").float().cpu()
           for lab in labels.split(chunk)]
    return ((torch.cat(out) + 1) / 2).clamp(0, 1), labels


def fid_of(G: Generator, dataset: str, n: int, data_root: str | None = None, device: str = "cpu") -> dict | None:
    """FID/KID of n samples against the test split (genprior.metrics), or None where Inception is missing.
    `device`: where Inception runs, the training's (on CPU, 2000 samples' features take minutes)."""
    from genprior.metrics import Unavailable, image_metrics

    unit, labels = generated_unit(G, n)
    try:
        m = image_metrics(unit, labels if G.num_classes else None, dataset, "test", lpips=False, root=data_root,
                          device=str(device))
    except Unavailable as e:  # the generator is still worth saving
        print(f"FID skipped: {e}", flush=True)
        return None
    inc = m["inception"]
    return {"fid": inc["overall"]["fid"], "kid": inc["overall"]["kid"], "n": n, "split": "test",
            "fid_per_class": {c: e["fid"] for c, e in inc.get("per_class", {}).items()}, "key": inc["key"]}


# ---------------------------------------------------------------- the run

class GanTrainer:
    """A GAN's training state (G, D, the EMA generator, two optimizers) and its step."""

    def __init__(self, spec: TrainSpec, real: Split, device):
        if spec.r1_every < 1 or spec.class_groups < 1:
            raise ConfigError(f"need r1_every >= 1, class_groups >= 1 (got {spec.r1_every}, {spec.class_groups})")
        if spec.batch % spec.class_groups:
            raise ConfigError(f"batch {spec.batch} is not a multiple of class_groups {spec.class_groups}")
        self.spec = spec
        # the generators' tanh range: [-1, 1] pixels
        self.images = (to_unit(real.images, real.info.name, space="normalized") * 2 - 1).to(device)
        self.labels = real.labels.to(device)
        self.table = class_table(self.labels)  # for class-grouped batches, computed once
        torch.manual_seed(derive_seed(spec.seed, 2 ** 31))  # the initial weights
        G, D = build(spec, real)
        self.G, self.D = G.to(device).train(), D.to(device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G, self.opt_D = optimizers(spec, self.G, self.D)
        self.parts = {"G": self.G, "D": self.D, "G_ema": self.G_ema, "opt_G": self.opt_G, "opt_D": self.opt_D}
        self.generator = self.G_ema  # what gets saved and sampled
        self.describe = (f"G {self.G.num_params():,} params, D {sum(p.numel() for p in self.D.parameters()):,} "
                         f"params")

    def step(self, step: int) -> dict:
        return train_step(step, self.spec, self.G, self.D, self.G_ema, self.opt_G, self.opt_D, self.images,
                          self.labels, self.table)

    def save(self, out: Path, info: dict) -> Path:
        return save_generator(self.G_ema.cpu(), out, info)


def train(spec, out: str | Path, ckpt: str | Path | None = None, real: Split | None = None,
          device: str = "cpu", data_root: str | None = None, log_every: int = 100, checkpoint_every: int = 500,
          fid_images: int = 0, command: str | None = None, progress: bool = True) -> Path:
    """Train (or resume) and write the EMA generator to `out` (its family's format) and <out>.png.

    `spec` is a TrainSpec (GANs) or a generators.train_diffusion.DiffusionSpec; its family
    builds the trainer, the loop is the same for all."""
    spec = spec.resolved()
    if spec.batch < 1 or spec.steps < 0:
        raise ConfigError(f"need batch >= 1 and steps >= 0 (got {spec.batch}, {spec.steps})")
    out = Path(out)
    ckpt = Path(ckpt) if ckpt else Path("runs") / "generators" / f"{out.name}.ckpt.pt"
    if real is None:
        real = load_split(spec.dataset, "train", data_root, resolution=spec.resolution)
    trainer = spec.trainer(spec, real, device)
    start, wall = load_checkpoint(ckpt, spec.identity(), trainer.parts)
    if start > spec.steps:  # saving it as a `steps`-step generator would mislabel it
        raise ConfigError(f"checkpoint {ckpt} holds step {start}, past steps={spec.steps}; pass steps={start} "
                          f"(or more), or ckpt=OTHER_PATH to start over")
    if start:
        print(f"resuming {ckpt} at step {start}/{spec.steps}", flush=True)
    print(f"{spec.arch} on {spec.dataset} {tuple(real.images.shape[1:])}: {trainer.describe}, batch {spec.batch}, "
          f"{spec.steps} steps", flush=True)

    t0 = t_log = time.perf_counter()
    last_logged = start
    with progress_bar(total=spec.steps, initial=min(start, spec.steps), desc=f"train {spec.arch}",
                      enabled=progress) as bar:
        for step in range(start, spec.steps):
            logs = trainer.step(step)
            if not all(math.isfinite(v) for v in logs.values()):
                raise Diverged(f"training diverged at step {step} ({logs}): lower lr= (now {spec.lr}); "
                               f"the last checkpoint ({ckpt}) is kept")
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in sorted(logs.items())[:2]}, refresh=False)
            done = step + 1
            if done % log_every == 0 or done == spec.steps:
                now = time.perf_counter()
                per_step = (now - t_log) / (done - last_logged)
                print(f"step {done}/{spec.steps} " + " ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()))
                      + f" {per_step:.3f} s/step", flush=True)
                t_log, last_logged = now, done
            if done % checkpoint_every == 0 or done == spec.steps:
                save_checkpoint(ckpt, spec.identity(), done, wall + time.perf_counter() - t0, trainer.parts)
    wall += time.perf_counter() - t0
    steps_done = max(start, spec.steps)

    G = trainer.generator.eval()
    info = {"command": command, "dataset": spec.dataset, "steps": steps_done, "images_seen": steps_done * spec.batch,
            "wall_seconds": round(wall, 1), "train": spec.identity(), "torch": torch.__version__,
            "device": str(device), "threads": torch.get_num_threads()}
    if fid_images > 0:
        scores = fid_of(G, spec.dataset, fid_images, data_root, device)
        if scores:
            info["fid"] = scores
            print(f"FID {scores.get('fid')} KID {scores.get('kid')} on {scores.get('n', fid_images)} images", flush=True)
    saved = trainer.save(out, info)
    grid = sample_grid(G, Path(str(out) + ".png"))
    print(f"wrote {saved} and {grid} ({steps_done} steps, {wall:.0f} s)", flush=True)
    return saved


# ---------------------------------------------------------------- CLI

@dataclass
class TrainingRunOptions:
    """Where and how a training runs; the spec (TrainSpec, DiffusionSpec) says what is trained."""
    out: str | None = None
    ckpt: str | None = None
    device: str | None = None
    data_root: str | None = None
    log_every: int = options.option(100, min=1)
    checkpoint_every: int = options.option(500, min=1)
    fid_images: int = options.option(0, min=0)


def spec_classes() -> dict:
    """arch -> the spec of its family (GANs here, diffusion models in generators/train_diffusion.py)."""
    from generators.train_diffusion import DIFFUSION_ARCHS, DiffusionSpec

    return {**{arch: TrainSpec for arch in ARCHS}, **{arch: DiffusionSpec for arch in DIFFUSION_ARCHS}}


def train_spec(items: dict):
    """The spec of `arch`'s family from key=value strings, with one-line errors."""
    classes = spec_classes()
    arch = items.get("arch", "stylegan2")
    if arch not in classes:
        raise ConfigError(f"unknown generator architecture {arch!r}; valid: {', '.join(classes)}")
    return options.spec_from(classes[arch], items, also_valid=tuple(f.name for f in fields(TrainingRunOptions)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        for arch, cls in spec_classes().items():
            listed = [f"{f.name}={getattr(cls(arch=arch), f.name)!r}" for f in fields(cls) if f.name != "arch"]
            print(f"arch={arch}:", ", ".join(listed))
        print("all:", ", ".join(f"{k}={v!r}" for k, v in asdict(TrainingRunOptions()).items()))
        return 0
    def work():
        retain_freed_memory()
        items = options.key_values(argv)
        run = options.spec_from(TrainingRunOptions, {f.name: items.pop(f.name) for f in fields(TrainingRunOptions) if f.name in items})
        if not run.out:
            raise ConfigError("pass out=PATH (e.g. out=assets/generators/fashion_mnist_stylegan2)")
        spec = train_spec(items)
        train(spec, run.out, run.ckpt, device=check_device(run.device or ("cuda" if torch.cuda.is_available() else "cpu")),
              data_root=run.data_root, command=shlex.join(["python", "-m", "generators.train", *argv]),
              log_every=run.log_every, checkpoint_every=run.checkpoint_every, fid_images=run.fid_images)

    return exit_status("generators.train", work, "data_root=DIR",
                       stopped="rerun the same command to resume from the last checkpoint")


if __name__ == "__main__":
    sys.exit(main())
