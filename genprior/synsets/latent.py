"""The base of every set stored as latents of a frozen generator (GAN, diffusion model).

What all of them share, so that a new generator-backed synset writes only how its
latents are made and decoded (`decode`), and which tensors are learnable (`latent_groups`):

- the generator is a fixed prior, kept out of the set's state (checkpoints,
  latents.safetensors) and out of its storage count, unless `finetune` makes its weights
  a learnable group of their own (and then they count);
- it must fit the data set (channels, resolution, classes): one line if not;
- images come out in [-1, 1] and reach the objective in the data set's value space,
  mapped differentiably and never clamped (a clamp would cut the gradient of every
  pixel the generator puts slightly out of range);
- rendering takes the base class's chunked path (genprior/synsets/base.py), so the
  generator's activations are alive for one chunk only.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from genprior import artifacts
from genprior.data import Split, from_unit
from genprior.errors import ConfigError
from genprior.synsets.base import Synset


class LatentSynset(Synset):
    def __init__(self, real: Split, ipc: int, generator: nn.Module, finetune: bool = False,
                 data_space: str = "normalized", data_root: str | None = None):
        super().__init__(real.info.num_classes, ipc)
        check_fit(generator, real)
        self.dataset, self.data_space, self.data_root = real.info.name, data_space, data_root
        self.finetune = finetune
        self.prior_digest = artifacts.module_digest(generator)  # as it starts, fine-tuned or not
        if finetune:
            self.generator = generator.train(False).requires_grad_(True)  # a registered module: saved with the set
        else:
            # Not a registered submodule: the set's state stays the latents alone. _apply
            # below still moves it with the synset.
            self.__dict__["generator"] = generator.eval().requires_grad_(False)

    # ---- what a latent synset defines
    def decode(self, index: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] of the items `index`, differentiable in the latents."""
        raise NotImplementedError  # abstract

    def latent_groups(self) -> dict[str, list[nn.Parameter]]:
        raise NotImplementedError  # abstract

    def latents_counted(self) -> str:
        """What the storage figure counts, e.g. "latents (w+)"."""
        raise NotImplementedError  # abstract

    # ---- shared
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if not self.finetune:
            self.generator._apply(fn, *args, **kwargs)
        return self

    def render(self, index: torch.Tensor) -> torch.Tensor:
        return from_unit((self.decode(index) + 1) / 2, self.dataset, self.data_space, self.data_root)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        groups = dict(self.latent_groups())
        if self.finetune:
            groups["generator"] = list(self.generator.parameters())
        return groups

    def latent_floats(self) -> int:
        """The floats a set of these latents stores: all of them, unless decode reads fewer."""
        return sum(p.numel() for ps in self.latent_groups().values() for p in ps)

    def storage(self) -> dict:
        latents = self.latent_floats()
        g_params = sum(p.numel() for p in self.generator.parameters())
        out = {"floats": latents + (self.lr is not None), "counted": self.latents_counted(),
               "generator_params": g_params}
        if self.finetune:
            out["floats"] += g_params
            out["counted"] += " + the fine-tuned generator"
        else:
            out["not_counted"] = "the frozen generator, shared by every set (as GLaD counts)"
        return out


def check_fit(g, real: Split) -> None:
    """A generator can render a set of `real`'s data set: same channels, resolution and classes."""
    info, shape = real.info, real.images.shape
    if g.channels != shape[1] or g.resolution != shape[-1]:
        raise ConfigError(f"{g.arch} generator makes {g.channels}x{g.resolution}x{g.resolution} images; "
                          f"{info.name} is {shape[1]}x{shape[-2]}x{shape[-1]}")
    if g.num_classes == 0:
        raise ConfigError(f"{g.arch} generator is unconditional; a synthetic set needs one with "
                          f"{info.num_classes} classes (the latents alone would not say which class an image is)")
    if g.num_classes != info.num_classes:
        raise ConfigError(f"{g.arch} generator has {g.num_classes} classes; {info.name} has {info.num_classes}")
