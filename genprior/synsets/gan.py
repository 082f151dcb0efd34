"""GLaD: the synthetic set as latents of a frozen, pretrained GAN.

Each image is generator(latent). The latents are the parameters; the generator is a
fixed prior (its weights are not part of the set, and are not counted in its storage,
as GLaD counts it) unless `finetune` makes it a learnable group too. Latent spaces:

    z    the input noise (class through the labels)
    w    one style vector per image (class already mixed in by the mapping network)
    w+   one style vector per synthesis layer: GLaD's default for DC/DM
    f    F_n, the synthesis state after block n, plus the w+ rows of the blocks after it:
         the earlier the block, the more the generator constrains the image

Images go through the base class's chunked path (DESIGN.md section 2): rendering all of
them without grad, then re-rendering one chunk at a time to push dL/dimages into the
latents, so the generator's activations are alive for one chunk only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genprior.data import Split, from_unit
from genprior.errors import ConfigError
from genprior.options import option
from genprior.rng import generator as seeded
from genprior.synsets.base import Synset

SPACES = ("z", "w", "w+", "f")


class GanSynset(Synset):
    kind = "gan"

    @dataclass
    class Options:  # configs/synset/gan.yaml says what each one means
        generator: str = option()
        code_dir: str | None = option()
        allow_pickle: bool = option()  # a real boolean: no string ("no", "false") is ever consent
        space: str = option(choices=SPACES)
        layer: int | None = option(min=1)
        truncation: float = option(min=0)
        finetune: bool = option()

    @classmethod
    def from_config(cls, o: Options, ctx) -> "GanSynset":
        from generators.io import open_generator

        g = open_generator(o.generator, o.code_dir, o.allow_pickle)  # on CPU; synset.to(device) moves it
        return cls(ctx.real, ctx.ipc, g, space=o.space, layer=o.layer, truncation=o.truncation, finetune=o.finetune,
                   seed=ctx.seed, data_space=ctx.dataset.space, data_root=ctx.dataset.root)

    def __init__(self, real: Split, ipc: int, generator, space: str = "w+", layer: int | None = None,
                 truncation: float = 0.7, finetune: bool = False, seed: int = 0, data_space: str = "normalized",
                 data_root: str | None = None):
        super().__init__(real.info.num_classes, ipc)
        g = generator
        _check_fit(g, real)
        if space not in SPACES:
            raise ConfigError(f"unknown latent space {space!r}; valid: {', '.join(SPACES)}")
        g.check_kind("w+" if space == "f" else space)  # one line naming what this generator has
        if space == "f":
            if layer is None:
                raise ConfigError(f"latent space f needs layer=n; valid: 1..{g.num_layers - 1}")
            g.check_layer(layer)
        elif layer is not None:
            raise ConfigError(f"layer={layer} applies to latent space f only (this set is in {space})")
        if truncation <= 0 and ipc > 1 and space != "z":
            raise ConfigError(f"truncation {truncation} gives every image of a class the same latent, and equal "
                              "latents get equal gradients forever; use truncation > 0 with ipc > 1")
        self.space, self.layer = space, layer
        self.dataset, self.data_space, self.data_root = real.info.name, data_space, data_root
        if finetune:
            self.generator = g.train(False).requires_grad_(True)  # a registered module: saved with the set
        else:
            # Not a registered submodule: the set's state (checkpoints, latents.safetensors) stays
            # the latents alone. _apply below still moves it with the synset.
            self.__dict__["generator"] = g.eval().requires_grad_(False)
        self.finetune = finetune

        labels = self.labels.to(g._device())
        gen = seeded(seed, 0x6A4)  # latents are drawn on CPU from the run seed, then moved
        with torch.no_grad():
            if space == "z":
                z = g.sample_latents(labels, "z", gen)
                self.latents = nn.Parameter(z.clone())
            else:
                w = g.sample_latents(labels, "w", gen, truncation=truncation) if truncation > 0 else g.mean_w(labels)
                if space == "w":
                    self.latents = nn.Parameter(w.clone())
                else:
                    ws = w.unsqueeze(1).repeat(1, g.num_ws, 1)
                    if space == "w+":
                        self.latents = nn.Parameter(ws.clone())
                    else:
                        self.f = nn.Parameter(g.to_f(ws, layer, labels).clone())
                        self.ws = nn.Parameter(ws.clone())

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if not self.finetune:
            self.generator._apply(fn, *args, **kwargs)
        return self

    def render(self, index: torch.Tensor) -> torch.Tensor:
        g, labels = self.generator, self.labels[index]
        if self.space == "f":
            x = g.from_f(self.f[index], self.ws[index], self.layer)
        else:
            x = g.decode(self.latents[index], labels, self.space)
        # [-1, 1] -> the data set's value space, differentiably (not clamped: a clamp would
        # cut the gradient of every pixel the generator puts slightly out of range)
        return from_unit((x + 1) / 2, self.dataset, self.data_space, self.data_root)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"f": [self.f], "w": [self.ws]} if self.space == "f" else {"latents": [self.latents]}
        if self.finetune:
            groups["generator"] = [p for p in self.generator.parameters()]
        return groups

    def storage(self) -> dict:
        latents = sum(p.numel() for name, ps in self.groups().items() if name != "generator" for p in ps)
        g_params = sum(p.numel() for p in self.generator.parameters())
        out = {"floats": latents + (self.lr is not None), "counted": f"latents ({self.space})",
               "generator_params": g_params}
        if self.finetune:
            out["floats"] += g_params
            out["counted"] += " + the fine-tuned generator"
        else:
            out["not_counted"] = "the frozen generator, shared by every set (as GLaD counts)"
        return out


def _check_fit(g, real: Split) -> None:
    info, shape = real.info, real.images.shape
    if g.channels != shape[1] or g.resolution != shape[-1]:
        raise ConfigError(f"{g.arch} generator makes {g.channels}x{g.resolution}x{g.resolution} images; "
                          f"{info.name} is {shape[1]}x{shape[-2]}x{shape[-1]}")
    if g.num_classes == 0:
        raise ConfigError(f"{g.arch} generator is unconditional; a synthetic set needs one with "
                          f"{info.num_classes} classes (the latents alone would not say which class an image is)")
    if g.num_classes != info.num_classes:
        raise ConfigError(f"{g.arch} generator has {g.num_classes} classes; {info.name} has {info.num_classes}")
