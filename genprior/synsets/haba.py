"""HaBa (Liu et al., NeurIPS 2022): a set factorized into per-class bases and shared hallucinators.

Every (basis, hallucinator) pair renders an image, so one storage budget yields bases x
hallucinators training images. A hallucinator is affine, as in the official code: a 3x3
convolution without padding, a learnable per-pixel scale (ones) and shift (zeros) on its
output, and a 3x3 transposed convolution back to the image size; channels in = the
bases', out = the data set's. Its per-pixel maps make it resolution-bound: built for the
data set's resolution (the official code fixes 32 px).

During distillation the objective (DC, DM or MTT, unchanged) sees, each step, `views`:
`all` (default) renders every basis through every hallucinator, basis-major as the export,
so an MTT trajectory sees all hallucinations, as the official code's does (it sends each
student batch through one hallucinator; here batches mix them), and every hallucinator
learns from every basis; `one` renders one image per basis through a hallucinator drawn per
basis from (seed, step) (`begin_step`): 1/H the images, the choice of genprior's first HaBa runs.

The adversary is the synset's auxiliary term (docs/design.md, seams): a small feature
extractor (the 3-block ConvNet) trained in alternation with the set. The set's side adds
lambda_set * mean((cos(f(x0), f(x1)) + 1) / 2) between two hallucinations of each basis,
pushing them apart; after the set's update, the extractor takes one SGD step (lr 1e-3,
momentum 0.9) on cross-entropy (1) + lambda_views * mean((1 - cos) / 2) between the two
views + lambda_contrast * SupCon (temperature 0.07), on two fresh views. Its weights and
optimizer state are checkpointed beside the set, never part of it: not in its state, its
export, its storage or the gradient all-reduce; every process computes it alike from the
same images and seeds.

Storage: bases + hallucinator parameters must fit the budget of `ipc` real images per
class (a learned lr, MTT's one float, on top, as for pixels). `bases_per_class` null takes
as many as fit; single-channel bases (`base_channels=1`, lifted by the hallucinator's first
convolution) and bases at a lower resolution (`base_resolution`, upsampled bilinearly
before the hallucinators) make room: null halves the data's resolution until the bases asked
for (null: `ipc`, as many distinct bases as a pixel set has images) fit. `storage` also states
the paper's accounting (bases = IPC images per class, hallucinators on top).

Bound: a rendered image is a product of two learned factors, and DC and DM judge it through
instance-normalized ConvNets that do not see its scale (docs/measurements.md, HaBa), so nothing
holds it near the data: an unbounded haba=dm set reached values of 1e13 and diverged AlexNet in
every run. With `bound` (the default) the hallucinators' output passes through a scaled tanh
onto the real split's per-channel value range, as a generator's output ends in one:
c + w * tanh((y - c) / w), c and w the range's centre and half-width. bound=false is the
official code's unbounded output. The range belongs to the data set, like its mean and std
and its ZCA transform: not stored with the set, nor counted in its storage.

The saved set is the whole product, bases x hallucinators, in groups of `views`
consecutive images per basis (metadata "views"): the protocol trains on all of them, or,
with protocol.views=one, on one random view per basis each epoch, the paper's evaluation.
(The official evaluation also standardizes every batch, synthetic and test, to mean 0 and
std 1, which hides a set's scale and offset; genprior's protocols judge the values as they are
unless protocol.standardize=true.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genprior.augment import DSA, dsa_or_none
from genprior.data import Split
from genprior.errors import ConfigError
from genprior.nets import seeded_net
from genprior.options import option
from genprior.rng import derive_seed, seeded
from genprior.synsets.base import Synset

INITS = ("real", "noise")
HALLUCINATOR_INITS = ("random", "identity")
# identity: each hallucinator starts as the identity plus its random init scaled by this, so a
# render starts within about a tenth of its basis (a real image, as a pixel set starts) and the
# hallucinators still differ: identical ones would get identical gradients from every objective,
# and the adversary's push-apart term is flat where two views are equal
IDENTITY_JITTER = 0.1
PREIMAGE_REACH = 0.95  # tanh's slope at atanh(0.95) = 1.83 is 0.1: the data's ends still learn
VIEWS = ("all", "one")  # what a distillation step renders: every hallucination of each basis, or one
# HaBa's own random streams per step: (seed, step, HABA_SALT + k). The objectives draw theirs
# from (seed, step, class or unit index), so small salts here would share their streams
HABA_SALT = 0x4AB00


class Hallucinator(nn.Module):
    """basis [N, c_in, r, r] -> image [N, c_out, r, r]: conv3x3 (valid), per-pixel scale and shift, transposed conv3x3."""

    def __init__(self, c_in: int, c_out: int, resolution: int, init: str = "random", border: torch.Tensor | None = None):
        super().__init__()
        if resolution < 3:
            raise ConfigError(f"a hallucinator needs images of at least 3 px (its 3x3 convolution has no padding); "
                              f"got {resolution}")
        self.encode = nn.Conv2d(c_in, c_out, 3)
        self.scale = nn.Parameter(torch.ones(1, c_out, resolution - 2, resolution - 2))
        self.shift = nn.Parameter(torch.zeros(1, c_out, resolution - 2, resolution - 2))
        self.decode = nn.ConvTranspose2d(c_out, c_out, 3)
        if init == "identity":  # centre taps: encode keeps the interior (channel o from o % c_in), decode puts it
            with torch.no_grad():  # back; the 1-px frame the valid conv drops comes back as `border` (per channel)
                for conv in (self.encode, self.decode):
                    conv.weight.mul_(IDENTITY_JITTER)
                    conv.bias.mul_(IDENTITY_JITTER)
                for o in range(c_out):
                    self.encode.weight[o, o % c_in, 1, 1] += 1
                    self.decode.weight[o, o, 1, 1] += 1  # a transposed conv's weight is [in, out, 3, 3]
                if border is not None:  # the frame gets the decoder's bias alone; the encoder's cancels it inside
                    self.decode.bias += border
                    self.encode.bias -= border
        elif init != "random":
            raise ConfigError(f"unknown hallucinator_init {init!r}; valid: {', '.join(HALLUCINATOR_INITS)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x) * self.scale + self.shift)


class HabaSynset(Synset):
    @dataclass
    class Options:  # configs/synset/haba.yaml says what each one means
        hallucinators: int = option(min=1)
        bases_per_class: int | None = option(min=1)
        base_channels: int | None = option(min=1)
        base_resolution: int | None = option(min=3)
        init: str = option(choices=INITS)
        hallucinator_init: str = option(choices=HALLUCINATOR_INITS)
        views: str = option(choices=VIEWS)
        bound: bool = option()
        adversary: bool = option()
        lambda_set: float = option(min=0)
        lambda_views: float = option(min=0)
        lambda_contrast: float = option(min=0)
        temperature: float = option(above=0)
        adversary_lr: float = option(above=0)
        dsa: str = option()

        def __post_init__(self):
            DSA(self.dsa)

    @classmethod
    def from_config(cls, o: Options, ctx) -> "HabaSynset":
        return cls(ctx.real, ctx.ipc, seed=ctx.seed, **vars(o))

    def __init__(self, real: Split, ipc: int, hallucinators: int = 5, bases_per_class: int | None = None,
                 base_channels: int | None = None, base_resolution: int | None = None, init: str = "real",
                 hallucinator_init: str = "random", views: str = "all", bound: bool = True, adversary: bool = True, lambda_set: float = 0.1,
                 lambda_views: float = 0.1, lambda_contrast: float = 0.1, temperature: float = 0.07, adversary_lr: float = 1e-3,
                 dsa: str = "color_crop_cutout_flip_scale_rotate", seed: int = 0):
        info, (channels, resolution) = real.info, (real.images.shape[1], real.images.shape[-1])
        c_base = base_channels or channels
        if base_resolution is not None and base_resolution > resolution:
            raise ConfigError(f"base_resolution {base_resolution} is above the data's {resolution} px")
        if views not in VIEWS:
            raise ConfigError(f"unknown HaBa views {views!r}; valid: {', '.join(VIEWS)}")
        if adversary and hallucinators < 2:
            raise ConfigError("the adversary compares two different hallucinations of a basis: hallucinators >= 2 "
                              "(or adversary=false)")
        halluc_floats = hallucinators * _hallucinator_floats(c_base, channels, resolution)
        budget = ipc * info.num_classes * channels * resolution * resolution

        def fitting(r: int) -> int:  # bases per class that fit beside the hallucinators at base resolution r
            return (budget - halluc_floats) // (info.num_classes * c_base * r * r)

        # null: the data's resolution, halved while fewer bases per class fit than wanted (those asked
        # for, else ipc: never fewer distinct bases than the pixel set has images). At FashionMNIST
        # IPC 10 that is 36 bases of 14 px per class where 9 full-size ones fit: under DM at the
        # cells' budget, ConvNet 81.44 +- 0.04 against 76.94 +- 0.17 (docs/measurements.md, HaBa;
        # bench/results/lr_sweep.json)
        r_base, wanted = base_resolution or resolution, bases_per_class or ipc
        while base_resolution is None and fitting(r_base) < wanted and r_base // 2 >= 3:
            r_base //= 2
        fits = fitting(r_base)
        if bases_per_class is None:
            bases_per_class = fits
        if bases_per_class < 1 or bases_per_class > fits:
            hint = "fewer hallucinators" + (", base_channels=1" if c_base > 1 else "") + " or a lower base_resolution"
            raise ConfigError(
                f"HaBa at ipc={ipc} may store {budget} floats ({ipc} real images per class); {hallucinators} "
                f"hallucinators take {halluc_floats} and each class's basis {c_base * r_base * r_base}, so "
                + (f"{bases_per_class} bases per class do not fit (at most {max(fits, 0)})" if bases_per_class >= 1
                   else "not even one basis per class fits") + f"; use {hint}")
        # items while distilling: each basis's `per_basis` views, basis-major (one: the drawn view)
        self.bases_per_class, self.per_basis = bases_per_class, hallucinators if views == "all" else 1
        self.num_bases = info.num_classes * bases_per_class
        super().__init__(info.num_classes, bases_per_class * self.per_basis)
        self.register_buffer("basis_labels", torch.arange(info.num_classes).repeat_interleave(bases_per_class),
                             persistent=False)
        self.budget_ipc, self.budget = ipc, budget
        self.channels, self.resolution, self.seed = channels, resolution, seed
        # the data's per-channel range as centre and half-width; not state: the real split decides it
        lo, hi = real.images.amin((0, 2, 3)), real.images.amax((0, 2, 3))
        self.register_buffer("centre", ((hi + lo) / 2).view(1, -1, 1, 1) if bound else None, persistent=False)
        self.register_buffer("half_width", ((hi - lo) / 2).view(1, -1, 1, 1) if bound else None, persistent=False)
        g = seeded(seed, 0x4ABA)
        if init == "real":  # random real images of each class, as the official code starts
            if bases_per_class > (smallest := real.smallest_class()):
                raise ConfigError(f"HaBa starts {bases_per_class} bases per class from real images, but the smallest "
                                  f"class of {info.name}/{real.split} has {smallest}: set bases_per_class, "
                                  "base_resolution or init=noise")
            bases, _ = real.sample_per_class(bases_per_class, g)
            if c_base != channels:
                bases = bases.mean(1, keepdim=True) if c_base == 1 else bases[:, :1].repeat(1, c_base, 1, 1)
            if r_base != resolution:
                bases = F.interpolate(bases, size=r_base, mode="bilinear", align_corners=False, antialias=True)
        elif init == "noise":
            bases = torch.randn(self.num_bases, c_base, r_base, r_base, generator=g)
        else:
            raise ConfigError(f"unknown HaBa init {init!r}; valid: {', '.join(INITS)}")
        border = None  # identity only: the real images' mean 1-px frame per channel, which its valid conv drops
        if hallucinator_init == "identity":
            frame = torch.ones(resolution, resolution, dtype=torch.bool)
            frame[1:-1, 1:-1] = False
            border = real.images[..., frame].mean((0, 2))
            if bound:  # so that the bound maps a render back onto its real image
                border = self._preimage(border.view(1, -1, 1, 1)).flatten()
                bases = self._preimage(bases) if init == "real" else bases
        self.bases = nn.Parameter(bases.clone())
        with torch.random.fork_rng(devices=[]):  # the CPU generator only (genprior.nets.seeded_net says why)
            torch.random.default_generator.manual_seed(derive_seed(seed, 0x4ABB))
            self.hallucinators = nn.ModuleList(Hallucinator(c_base, channels, resolution, hallucinator_init, border)
                                               for _ in range(hallucinators))
        self.assignment = torch.zeros(self.num_bases, dtype=torch.long)  # views=one: each basis's hallucinator now
        # not a submodule: outside the set's state and its all-reduce
        self.__dict__["adversary"] = Adversary(real, seed, adversary_lr, dsa, lambda_set, lambda_views,
                                               lambda_contrast, temperature) if adversary else None

    def _preimage(self, images: torch.Tensor) -> torch.Tensor:
        """Values whose bounded image is `images`, the range's ends taken to PREIMAGE_REACH of the
        half-width (the exact ends are infinitely far and pass no gradient through the tanh)."""
        centre, half_width = (b.mean(1, keepdim=True) if images.shape[1] != b.shape[1] else b
                              for b in (self.centre, self.half_width))  # single-channel bases: the mean range
        t = ((images - centre) / half_width).clamp(-PREIMAGE_REACH, PREIMAGE_REACH)
        return centre + half_width * torch.atanh(t)

    # ---- rendering
    def _views(self, index: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Basis index[i] through hallucinator which[i]."""
        x = self.bases[index]
        if x.shape[-1] != self.resolution:
            x = F.interpolate(x, size=self.resolution, mode="bilinear", align_corners=False)
        out = x.new_empty(len(index), self.channels, self.resolution, self.resolution)
        for h, hallucinator in enumerate(self.hallucinators):
            mask = which == h
            if mask.any():  # in out's dtype: under bf16 autocast the convolutions return bf16
                out[mask] = hallucinator(x[mask]).to(out.dtype)
        if self.centre is not None:
            out = self.centre + self.half_width * torch.tanh((out - self.centre) / self.half_width)
        return out

    def begin_step(self, step: int) -> None:
        if self.per_basis == 1:
            self.assignment = torch.randint(len(self.hallucinators), (self.num_bases,),
                                            generator=seeded(self.seed, step, HABA_SALT + 1))

    def render(self, index: torch.Tensor) -> torch.Tensor:
        if self.per_basis == 1:
            return self._views(index, self.assignment.to(index.device)[index])
        return self._views(index // self.per_basis, index % self.per_basis)

    def _two_views(self, step: int, salt: int, first: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two hallucinator choices per basis, different from each other (the first given, or drawn)."""
        g = seeded(self.seed, step, HABA_SALT + salt)
        h = len(self.hallucinators)
        first = torch.randint(h, (self.num_bases,), generator=g) if first is None else first.cpu()
        second = (first + 1 + torch.randint(h - 1, (self.num_bases,), generator=g)) % h
        return first, second

    # ---- the adversary: an auxiliary term of the set, and its own update
    def auxiliary_loss(self, images: torch.Tensor, step: int) -> torch.Tensor | None:
        if self.adversary is None:
            return None
        if self.per_basis > 1:  # both views are among this step's images: their gradient takes the chunked path
            first, second = (v.to(images.device) for v in self._two_views(step, 2))
            at = torch.arange(self.num_bases, device=images.device) * self.per_basis
            return self.adversary.set_term(images[at + first], images[at + second], step)
        index = torch.arange(self.num_bases, device=images.device)
        _, second = self._two_views(step, 2, first=self.assignment)
        other = self._views(index, second.to(images.device))  # with a graph: its gradient goes to the set directly
        return self.adversary.set_term(images, other, step)

    def end_step(self, step: int) -> None:
        # Every rank takes this step on the same set with the same seeded views, so the adversary
        # stays one network across processes without a collective (a small ConvNet: redundant, cheap).
        if self.adversary is None:
            return
        index = torch.arange(self.num_bases, device=self.bases.device)
        first, second = self._two_views(step, 4)
        with torch.no_grad():  # the extractor's step never changes the set
            views = [self._views(index, first.to(index.device)), self._views(index, second.to(index.device))]
        self.adversary.update(*views, self.basis_labels, step)

    def aux_state(self) -> dict:
        return {} if self.adversary is None else self.adversary.state_dict()

    def load_aux_state(self, state: dict) -> None:
        if self.adversary is not None and state:
            self.adversary.load_state_dict(state)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self.adversary is not None:
            self.adversary.net._apply(fn, *args, **kwargs)
        return self

    # ---- what the set is
    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"bases": [self.bases], "hallucinators": list(self.hallucinators.parameters())}

    def storage(self) -> dict:
        bases = self.bases.numel()
        halluc = sum(p.numel() for p in self.hallucinators.parameters())
        return {"floats": bases + halluc + (self.lr is not None), "budget": self.budget,
                "counted": f"{self.num_bases} bases {tuple(self.bases.shape[1:])} + {len(self.hallucinators)} hallucinators",
                "bases": bases, "hallucinator_params": halluc,
                "paper_accounting": f"ipc {self.budget_ipc} = {self.budget_ipc} full-size bases per class; "
                                    f"the hallucinators' {halluc} floats on top (the paper counts bases only)",
                "not_counted": "the adversary (training only)"}

    @torch.no_grad()
    def export_items(self, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Every basis through every hallucinator, `views` consecutive images per basis, class-major."""
        h = len(self.hallucinators)
        index = torch.arange(self.num_bases, device=self.bases.device).repeat_interleave(h)
        which = torch.arange(h, device=index.device).repeat(self.num_bases)
        images = torch.cat([self._views(i, w) for i, w in zip(index.split(chunk), which.split(chunk))])
        return images, self.basis_labels.repeat_interleave(h), {"views": h, "bases_per_class": self.bases_per_class}


class Adversary:
    """HaBa's feature extractor (a 3-layer ConvNet), trained in alternation with the set: it learns
    to classify hallucinations and to tell two hallucinations of a basis alike (`update`), while the
    set is pushed to make them differ in its feature space (`set_term`). Training state only: its
    weights and optimizer go into the checkpoint (aux_state), never into the set or its all-reduce."""

    def __init__(self, real: Split, seed: int, lr: float, dsa: str, lambda_set: float, lambda_views: float,
                 lambda_contrast: float, temperature: float):
        info, (channels, resolution) = real.info, (real.images.shape[1], real.images.shape[-1])
        self.seed = seed
        self.net = seeded_net("convnet", channels, info.num_classes, resolution, derive_seed(seed, 0x4ABC))
        self.opt = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        self.dsa = dsa_or_none(dsa, info.flip_ok)
        self.lambda_set, self.lambda_views, self.lambda_contrast = lambda_set, lambda_views, lambda_contrast
        self.temperature = temperature

    def _features(self, x: torch.Tensor, step: int, salt: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dsa is not None:
            x = self.dsa(x, derive_seed(self.seed, step, HABA_SALT + salt))
        feats = self.net.embed(x)
        return feats, self.net.classifier(feats)

    def set_term(self, images: torch.Tensor, other: torch.Tensor, step: int) -> torch.Tensor:
        """The set's side: lambda_set * mean((cos + 1) / 2) between two hallucinations of each basis."""
        self.net.requires_grad_(False)  # the set's step never changes the extractor
        f, _ = self._features(torch.cat([images, other]), step, 3)
        self.net.requires_grad_(True)
        f0, f1 = f.chunk(2)
        return self.lambda_set * ((F.cosine_similarity(f0, f1, dim=1) + 1) / 2).mean()

    def update(self, first: torch.Tensor, second: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """The extractor's step on two views of every basis: cross-entropy + lambda_views (1 - cos) / 2
        + lambda_contrast * supervised contrastive."""
        f, logits = self._features(torch.cat([first, second]), step, 5)
        f0, f1 = F.normalize(f, dim=1).chunk(2)
        loss = (F.cross_entropy(logits, torch.cat([labels, labels]))
                + self.lambda_views * ((1 - (f0 * f1).sum(1)) / 2).mean()
                + self.lambda_contrast * supcon(torch.stack([f0, f1], 1), labels, self.temperature))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def state_dict(self) -> dict:
        return {"adversary": self.net.state_dict(), "adversary_opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["adversary"])
        self.opt.load_state_dict(state["adversary_opt"])


def supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over [N, views, D] L2-normalized features:
    every other view of a same-class item is a positive, self excluded ("all" anchors). The
    common implementation scales the loss by temperature / base_temperature, both 0.07 in HaBa's
    use: 1, left out (so another `temperature` here changes the logits only)."""
    n, v, _ = features.shape
    f = features.transpose(0, 1).reshape(n * v, -1)  # view-major
    y = labels.repeat(v)
    logits = f @ f.T / temperature
    self_mask = torch.eye(n * v, dtype=torch.bool, device=f.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (y[:, None] == y[None, :]) & ~self_mask
    return -(log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1).clamp(min=1)).mean()


def _hallucinator_floats(c_in: int, c_out: int, resolution: int) -> int:
    return c_in * c_out * 9 + c_out + 2 * c_out * (resolution - 2) ** 2 + c_out * c_out * 9 + c_out
