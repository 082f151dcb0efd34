"""The synset: an nn.Module that owns a synthetic set's learnable tensors and renders it.

Every parameterization (pixels, GAN latents, diffusion latents, HaBa bases) is a
Synset. The distillation loop only ever does three things with one:

    images = synset.render_all(chunk)     # no grad, chunk by chunk
    ... objective -> dL/dimages ...
    synset.push_grad(dL_dimages, chunk)   # re-render each chunk with grad, backprop it

This is GLaD's constant-memory trick (docs/design.md, "The constant-memory backward"): a
generator's activations are only ever alive for one chunk, so memory does not grow with
IPC x classes. Pixels take the same path (their "render" is the identity), so the loop has one code path.

Items are class-major: item i has label i // items_per_class (the IPC of a pixel or latent
set; HaBa renders bases x hallucinators and keeps its bases per class here).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genprior.errors import ConfigError
from genprior.options import option, spec_from
from genprior.rng import seeded


@dataclass
class OptimGroup:
    """SGD settings of one learnable group (`synset.optim.<group>`)."""
    lr: float = option(min=0)
    momentum: float = option(0.0, min=0, below=1)
    # after every update the group's values are held at or above it (None: unheld). HaBa's code
    # holds MTT's learned lr at >= 1e-3, so that a falling lr cannot stall the student
    floor: float | None = option(None)


class Synset(nn.Module):
    @dataclass
    class Options:
        """The keys of this synset's config section besides `kind` and `optim`; each synset states its own."""

    has_prior = False  # whether the set is expressed in a fixed prior (a generator): prior_digest

    @classmethod
    def from_config(cls, options, ctx) -> "Synset":
        """The set for a run (genprior/context.py), from options already checked against cls.Options."""
        return cls(ctx.real, ctx.ipc, seed=ctx.seed, **vars(options))

    @classmethod
    def prior_digest_now(cls, section: dict) -> str | None:
        """Today's prior_digest of the prior a config section names (a recorded run's `synset:`), without
        building the set; None where loading a file cannot tell (bench/distill.py: is a result still today's)."""
        return None

    def __init__(self, num_classes: int, items_per_class: int):
        super().__init__()
        if items_per_class < 1:
            raise ConfigError(f"ipc must be >= 1, got {items_per_class}")
        self.num_classes, self.items_per_class = num_classes, items_per_class
        self.register_buffer("labels", torch.arange(num_classes).repeat_interleave(items_per_class), persistent=False)
        self.lr: nn.Parameter | None = None  # a learned training lr (MTT), part of the set
        self.setup: str | None = None  # what building it did beyond the obvious (the run's start line says it)
        # The fixed prior the set is expressed in (a frozen generator's weights), as a digest;
        # None: the set stands alone. Checkpoints and metrics.json keep it, so latents never
        # resume against, or get reported for, another generator (genprior/synsets/latent.py).
        self.prior_digest: str | None = None

    def __len__(self) -> int:
        return self.num_classes * self.items_per_class

    # ---- what a parameterization defines
    def render(self, index: torch.Tensor) -> torch.Tensor:
        """Images [len(index), C, H, W] of the items `index`, differentiable in the parameters."""
        raise NotImplementedError  # abstract

    def groups(self) -> dict[str, list[nn.Parameter]]:
        """Learnable tensors by group name; each group gets its own lr/momentum from the config."""
        raise NotImplementedError  # abstract

    def storage(self) -> dict:
        """What storing the set costs, in floats, and what is (not) counted."""
        raise NotImplementedError  # abstract

    # ---- optional hooks: no-ops here. The loop calls them on every synset without asking
    # which one it has; a synset with auxiliary parts (HaBa's adversary) overrides them.
    def begin_step(self, step: int) -> None:
        """Before a step renders the set (e.g. draw which hallucinator each basis goes through)."""

    def auxiliary_loss(self, images: torch.Tensor, step: int) -> torch.Tensor | None:
        """An extra loss term on this step's rendered images, summed with the objective's; None if none.
        Every process computes it on the whole set; the loop divides it by the number of processes."""
        return None

    def end_step(self, step: int) -> None:
        """After the set's update: train auxiliary state (the same on every process, never all-reduced)."""

    def aux_state(self) -> dict:
        """Auxiliary state for the checkpoint (kept out of the set's state and its export)."""
        return {}

    def load_aux_state(self, state: dict) -> None:
        pass

    def stored_state(self) -> dict:
        """What the set is stored as beside its images (latents, bases and hallucinators, with its
        learned lr), or {} when its images are all it is; genprior/run.py writes it to latents.safetensors."""
        return self.state_dict()

    def export_items(self, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(images, labels, metadata) of the set as it is saved and judged: the rendered items here;
        a synset whose training set differs from one step's rendering (HaBa) says so."""
        with torch.no_grad():
            return self.render_all(chunk), self.labels, {}

    # ---- shared machinery
    def learn_lr(self, init: float) -> None:
        """Make the training lr part of the set (MTT); evaluation trains with it."""
        self.lr = nn.Parameter(torch.tensor(float(init)))

    @torch.no_grad()
    def render_all(self, chunk: int = 256) -> torch.Tensor:
        return torch.cat([self.render(idx) for idx in self._chunks(chunk)])

    def push_grad(self, grad: torch.Tensor, chunk: int = 256) -> None:
        """Accumulate dL/dparams given dL/dimages, one chunk of re-rendered images at a time."""
        for idx in self._chunks(chunk):
            self.render(idx).backward(grad[idx.to(grad.device)])

    def param_groups(self, settings: dict) -> list[dict]:
        """Optimizer groups: settings maps every group name to {lr, momentum}."""
        groups = dict(self.groups())
        if self.lr is not None:
            groups["lr"] = [self.lr]
        missing = sorted(set(groups) - set(settings))
        if missing:
            raise ConfigError(f"no optimizer settings for synset group(s) {', '.join(missing)} "
                              f"(this synset has: {', '.join(groups)})")
        checked = {name: spec_from(OptimGroup, settings[name], f"synset.optim.{name}", strings=False) for name in groups}
        return [{"params": params, "name": name, "lr": checked[name].lr,
                 "momentum": checked[name].momentum, "floor": checked[name].floor}
                for name, params in groups.items()]

    def _chunks(self, chunk: int):
        if chunk < 1:
            raise ConfigError(f"chunk size must be >= 1, got {chunk}")
        device = self.labels.device
        return torch.arange(len(self), device=device).split(chunk)


def real_start(real, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The real images a set starts from: `per_class` random images of each class, drawn from
    the run seed. A pixel set starts as them and GAN latents can be inverted from them
    (genprior/synsets/invert.py), so at one seed both begin at the same images."""
    return real.random_subset(per_class, seeded(seed, 0x1717))
