"""GLaD: the synthetic set as latents of a frozen, pretrained GAN.

Each image is generator(latent). The latents are the parameters; the generator is a
fixed prior (its weights are not part of the set, and are not counted in its storage,
as GLaD counts it) unless `finetune` makes it a learnable group too. Latent spaces:

    z    the input noise (class through the labels)
    w    one style vector per image (class already mixed in by the mapping network)
    w+   one style vector per synthesis layer: GLaD's default for DC/DM
    f    F_n, the synthesis state after block n, plus the w+ rows of the blocks after it:
         the earlier the block, the more the generator constrains the image

What every generator-backed set shares (the frozen generator kept out of the state,
the value-space mapping, the chunked constant-memory path) is genprior/synsets/latent.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genprior import artifacts
from genprior.data import Split, to_unit
from genprior.errors import ConfigError
from genprior.options import option, spec_from
from genprior.rng import seeded
from genprior.synsets.base import real_start
from genprior.synsets.invert import InvertSpec, invert
from genprior.synsets.latent import LatentSynset

LATENT_SPACES = ("z", "w", "w+", "f")
INITS = ("sample", "invert")  # truncated samples of the generator | inverted real images (synsets/invert.py)


class GanSynset(LatentSynset):
    @dataclass
    class Options:  # configs/synset/gan.yaml says what each one means
        generator: str = option()
        code_dir: str | None = option()
        allow_pickle: bool = option()  # a real boolean: no string ("no", "false") is ever consent
        space: str = option(choices=LATENT_SPACES)
        layer: int | None = option(min=1)
        truncation: float = option(min=0)
        finetune: bool | list[str] = option()
        init: str = option("sample", choices=INITS)
        invert: dict | None = option(None)
        class_map: list[int] | None = option(None, min=0)

        def __post_init__(self):
            self.invert_spec()  # its keys are checked with the rest, before any work

        def invert_spec(self):
            return spec_from(InvertSpec, self.invert or {}, "synset.invert", strings=False)

    @classmethod
    def from_config(cls, o: Options, ctx) -> "GanSynset":
        from generators.io import open_generator

        g = open_generator(o.generator, o.code_dir, o.allow_pickle)  # on CPU; synset.to(device) moves it
        imagenet = list(ctx.real.info.imagenet_classes)  # an ImageNet subset on an ImageNet-1k generator: its indices
        class_map = o.class_map if o.class_map is not None else imagenet if imagenet and g.num_classes == 1000 else None
        synset = cls(ctx.real, ctx.ipc, g, space=o.space, layer=o.layer, truncation=o.truncation,
                     finetune=o.finetune, seed=ctx.seed, data_space=ctx.dataset.space, data_root=ctx.dataset.root,
                     init=o.init, class_map=class_map)
        if o.init == "invert":
            synset.setup = synset.invert_real(ctx.real, o.invert_spec(), ctx)
        return synset

    @classmethod
    def prior_digest_now(cls, section: dict) -> str | None:
        from generators.io import open_generator

        g = open_generator(section["generator"], section.get("code_dir"), section.get("allow_pickle") is True)
        return artifacts.module_digest(g)

    def __init__(self, real: Split, ipc: int, generator, space: str = "w+", layer: int | None = None,
                 truncation: float = 0.7, finetune: bool | list[str] = False, seed: int = 0, data_space: str = "normalized",
                 data_root: str | None = None, init: str = "sample", class_map: list[int] | None = None):
        super().__init__(real, ipc, generator, finetune, data_space, data_root, class_map)
        g = generator
        if space not in LATENT_SPACES:
            raise ConfigError(f"unknown latent space {space!r}; valid: {', '.join(LATENT_SPACES)}")
        g.check_kind("w+" if space == "f" else space)  # one line naming what this generator has
        if space == "f":
            if layer is None:
                raise ConfigError(f"latent space f needs layer=n; valid: 1..{g.num_layers - 1}")
            g.check_layer(layer)
        elif layer is not None:
            raise ConfigError(f"layer={layer} applies to latent space f only (this set is in {space})")
        if init not in INITS:
            raise ConfigError(f"unknown GAN synset init {init!r}; valid: {', '.join(INITS)}")
        if init == "invert":  # every latent starts at its class mean (z: a seeded draw); inversion moves it
            truncation = 0.0
        elif truncation <= 0 and ipc > 1 and space != "z":
            raise ConfigError(f"truncation {truncation} gives every image of a class the same latent, and equal "
                              "latents get equal gradients forever; use truncation > 0 with ipc > 1")
        self.space, self.layer, self.seed = space, layer, seed

        labels = self.generator_labels.to(g._device())
        gen = seeded(seed, 0x6A4)  # latents are drawn on CPU from the run seed, then moved
        with torch.no_grad():
            if space == "z":
                self.latents = nn.Parameter(g.sample_latents(labels, "z", gen).clone())
                return
            w = g.sample_latents(labels, "w", gen, truncation=truncation) if truncation > 0 else g.mean_w(labels)
            if space == "w":
                self.latents = nn.Parameter(w.clone())
                return
            ws = w.unsqueeze(1).repeat(1, g.num_ws, 1)
            if space == "w+":
                self.latents = nn.Parameter(ws.clone())
            else:
                self.f = nn.Parameter(g.to_f(ws, layer, labels).clone())
                self.ws = nn.Parameter(ws.clone())

    def invert_real(self, real: Split, spec, ctx) -> str:
        """Fit every item's latents to the real image a pixel set would start from at this seed
        (synsets/base.py real_start), cached per generator, data set, space, seed and images."""
        images, _ = real_start(real, self.items_per_class, self.seed)
        targets = to_unit(images, real.info.name, self.data_space, self.data_root) * 2 - 1
        identity = {"generator": self.prior_digest,
                    "arch": self.generator.arch,
                    "dataset": real.info.name, "space": self.space, "layer": self.layer, "seed": self.seed,
                    "images": artifacts.tensor_digest(targets)}
        if not torch.equal(self.generator_labels, self.labels):  # the generator's classes start the latents
            identity["generator_labels"] = self.generator_labels.tolist()
        device = self.labels.device
        self.to(ctx.device)
        try:
            return invert(self, targets.to(ctx.device), spec, identity, ctx.cache_dir, real.info.name,
                          ctx.rank, ctx.world, ctx.barrier)
        finally:
            self.to(device)

    def decode(self, index: torch.Tensor) -> torch.Tensor:
        if self.space == "f":
            return self.generator.from_f(self.f[index], self.ws[index], self.layer)
        return self.generator.decode(self.latents[index], self.generator_labels[index], self.space)

    def latent_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"f": [self.f], "w": [self.ws]} if self.space == "f" else {"latents": [self.latents]}

    def latent_floats(self) -> int:
        if self.space != "f":
            return super().latent_floats()
        # F_n and the w+ rows decode reads; the rows before those only shaped F_n's start and are
        # kept in the parameter (and latents.safetensors) for the shape, not stored as the set
        return self.f.numel() + self.ws[:, self.generator.f_first_row(self.layer):].numel()

    def latents_counted(self) -> str:
        return f"latents (F_{self.layer} and the w+ rows read after it)" if self.space == "f" else f"latents ({self.space})"
