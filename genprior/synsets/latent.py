"""The base of every set stored as latents of a frozen generator (GAN, diffusion model).

What all of them share, so that a new generator-backed synset writes only how its
latents are made and decoded (`decode`), and which tensors are learnable (`latent_groups`):

- the generator is a fixed prior, kept out of the set's state (checkpoints,
  latents.safetensors) and out of its storage count, unless `finetune` makes its weights
  (true) or some of them (a list of parameter-name substrings, e.g. [class_embedding])
  a learnable group of their own: those are then part of the set, and count;
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
    has_prior = True

    def __init__(self, real: Split, ipc: int, generator: nn.Module, finetune: bool | list[str] = False,
                 data_space: str = "normalized", data_root: str | None = None, class_map: list[int] | None = None):
        super().__init__(real.info.num_classes, ipc)
        check_fit(generator, real, class_map)
        # each item's class as the generator numbers it: class_map[c] for data-set class c (a generator
        # of other classes: GLaD drives ImageNette/Woof with ImageNet-1k's StyleGAN-XL), else c itself.
        # (A diffusion generator maps its classes itself: generators/diffusion.py, class_map.)
        self.register_buffer("generator_labels", self.labels.clone() if class_map is None else
                             torch.as_tensor(class_map, dtype=torch.long)[self.labels], persistent=False)
        self.dataset, self.data_space, self.data_root = real.info.name, data_space, data_root
        self.finetune = finetune
        self.prior_digest = artifacts.module_digest(generator)  # as it starts, fine-tuned or not
        # Not a registered submodule: the set's state is its latents and the weights it trains
        # (`tuned`, the generator's own Parameter objects registered here too); _apply moves the rest.
        self.__dict__["generator"] = generator.eval().requires_grad_(False)
        tuned = tuned_parameters(generator, finetune)
        for p in tuned.values():
            p.requires_grad_(True)
        self.tuned = nn.ParameterDict({name.replace(".", ":"): p for name, p in tuned.items()})  # ("." is not a key)

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
        self.generator._apply(fn, *args, **kwargs)
        # the tuned weights are the generator's own: where a move made new Parameter objects
        # (torch.__future__'s overwrite mode) rather than moving them in place, take the generator's
        for key in self.tuned:
            self.tuned[key] = self.generator.get_parameter(key.replace(":", "."))
        return self

    def render(self, index: torch.Tensor) -> torch.Tensor:
        return from_unit((self.decode(index) + 1) / 2, self.dataset, self.data_space, self.data_root)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        groups = dict(self.latent_groups())
        if len(self.tuned):
            groups["generator"] = list(self.tuned.values())
        return groups

    def latent_floats(self) -> int:
        """The floats a set of these latents stores: all of them, unless decode reads fewer."""
        return sum(p.numel() for ps in self.latent_groups().values() for p in ps)

    def storage(self) -> dict:
        latents = self.latent_floats()
        g_params = sum(p.numel() for p in self.generator.parameters())
        out = {"floats": latents + (self.lr is not None), "counted": self.latents_counted(),
               "generator_params": g_params}
        tuned = sum(p.numel() for p in self.tuned.values())
        out["floats"] += tuned
        if self.finetune is True:
            out["counted"] += " + the fine-tuned generator"
        else:
            if tuned:
                out["counted"] += f" + the generator's {', '.join(self.finetune)} weights ({tuned})"
            out["not_counted"] = f"the frozen generator{' (the rest)' if tuned else ''}, shared by every set (as GLaD counts)"
        return out


def tuned_parameters(generator: nn.Module, finetune: bool | list[str]) -> dict[str, nn.Parameter]:
    """The generator's parameters a set trains: none (false), all (true), or those whose names
    contain one of the substrings (a list); a substring that matches nothing is one line."""
    named = dict(generator.named_parameters())
    if finetune is True or finetune is False:
        return named if finetune else {}
    for s in finetune:
        if not s:
            raise ConfigError("synset.finetune: an empty name part would match every parameter; use finetune=true")
        if not any(s in name for name in named):
            shown = ", ".join(sorted({name.split(".")[0] for name in named})[:8])
            raise ConfigError(f"synset.finetune: {s!r} is in no parameter name of the generator (its parts: {shown})")
    return {name: p for name, p in named.items() if any(s in name for s in finetune)}


def check_fit(g, real: Split, class_map: list[int] | None = None) -> None:
    """A generator can render a set of `real`'s data set: same channels and resolution, and its
    classes (or, with class_map, the generator class of each data-set class) the data set's."""
    info, shape = real.info, real.images.shape
    if g.channels != shape[1] or g.resolution != shape[-1]:
        raise ConfigError(f"{g.arch} generator makes {g.channels}x{g.resolution}x{g.resolution} images; "
                          f"{info.name} is {shape[1]}x{shape[-2]}x{shape[-1]}")
    if g.num_classes == 0:
        raise ConfigError(f"{g.arch} generator is unconditional; a synthetic set needs one with "
                          f"{info.num_classes} classes (the latents alone would not say which class an image is)")
    if class_map is not None:
        if len(class_map) != info.num_classes:
            raise ConfigError(f"class_map has {len(class_map)} entries; {info.name} has {info.num_classes} classes")
        if not all(0 <= c < g.num_classes for c in class_map):
            raise ConfigError(f"class_map must name classes 0..{g.num_classes - 1} of the {g.arch} generator, "
                              f"got {list(class_map)}")
    elif g.num_classes != info.num_classes:
        raise ConfigError(f"{g.arch} generator has {g.num_classes} classes; {info.name} has {info.num_classes}: "
                          f"a GAN set maps each data-set class to one of the generator's with synset.class_map=[...]")
