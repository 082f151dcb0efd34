"""Pixel space: the images themselves are the parameters. The baseline every prior must beat."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genprior.data import Split
from genprior.errors import ConfigError
from genprior.options import option
from genprior.rng import seeded
from genprior.synsets.base import Synset, real_start

INITS = ("real", "noise")


class PixelSynset(Synset):
    @dataclass
    class Options:
        init: str = option(choices=INITS)

    def __init__(self, real: Split, ipc: int, init: str = "real", seed: int = 0):
        super().__init__(real.info.num_classes, ipc)
        shape = real.images.shape[1:]
        if init == "real":  # DC/DM/MTT start from random real images of each class
            images, _ = real_start(real, ipc, seed)
        elif init == "noise":  # standard normal in normalized space
            images = torch.randn(len(self), *shape, generator=seeded(seed, 0x1717))
        else:
            raise ConfigError(f"unknown pixel init {init!r}; valid: {', '.join(INITS)}")
        self.images = nn.Parameter(images.clone())

    def render(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[index]

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {"images": [self.images]}

    def stored_state(self) -> dict:
        return {}  # the images are the set (synset.safetensors)

    def storage(self) -> dict:
        return {"floats": self.images.numel() + (self.lr is not None), "counted": "pixels"}
