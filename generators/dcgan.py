"""Class-conditional DCGAN-style generator and discriminator, any b * 2**k resolution.

Generator: [z, class embedding] -> linear -> C x b x b, then per doubling a stride-2
transposed conv + BatchNorm + ReLU, a 3x3 conv to the image channels and tanh. It has
only the z latent kind: there is no mapping network and no layer-wise style to split.
BatchNorm makes a training-mode forward depend on the batch, so decode it frozen
(`generators.base.frozen`, which `load_generator` applies).

Discriminator: stride-2 convs with leaky ReLU and no normalization (the R1 penalty
regularizes it; BatchNorm over separate real and fake batches would leak batch
statistics into the score), then a projection head like the StyleGAN2 one.
num_classes=0 makes both unconditional.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from generators.base import Generator, randn
from generators.layers import base_and_blocks, channels_at
from genprior.errors import ConfigError


class DCGAN(Generator):
    arch = "dcgan"

    def __init__(self, resolution: int = 28, channels: int = 1, num_classes: int = 10, z_dim: int = 64,
                 embed_dim: int = 32, channel_base: int = 1024, channel_max: int = 128):
        super().__init__()
        base, k = base_and_blocks(resolution)
        self.config = dict(resolution=resolution, channels=channels, num_classes=num_classes, z_dim=z_dim,
                           embed_dim=embed_dim, channel_base=channel_base, channel_max=channel_max)
        self.resolution, self.channels, self.num_classes, self.z_dim = resolution, channels, num_classes, z_dim
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        resolutions = [base * 2 ** i for i in range(k + 1)]
        chans = [channels_at(r, channel_base, channel_max) for r in resolutions]
        self.base, self.base_channels = base, chans[0]
        self.fc = nn.Linear(z_dim + (embed_dim if num_classes else 0), chans[0] * base * base, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for a, b in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.Conv2d(chans[-1], channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @property
    def latent_spec(self) -> dict:
        return {"z": (self.z_dim,)}

    def sample_latents(self, labels, kind="z", generator=None, truncation=1.0):
        self.check_kind(kind)
        self.check_labels(labels, len(labels))
        if truncation != 1.0:
            raise ConfigError("dcgan: truncation needs a w space; this generator has only z latents")
        return randn((len(labels), self.z_dim), generator, self._device())

    def decode(self, latents, labels=None, kind="z"):
        self.check_kind(kind)
        labels = self.check_labels(labels, len(latents))
        x = latents if self.embed is None else torch.cat([latents, self.embed(labels)], dim=1)
        x = self.fc(x).view(-1, self.base_channels, self.base, self.base)
        return self.net(x)


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int = 28, channels: int = 1, num_classes: int = 10, channel_base: int = 1024,
                 channel_max: int = 128):
        super().__init__()
        base, k = base_and_blocks(resolution)
        resolutions = [resolution // 2 ** i for i in range(k + 1)]
        chans = [channels_at(r, channel_base, channel_max) for r in resolutions]
        layers: list[nn.Module] = [nn.Conv2d(channels, chans[0], 3, padding=1), nn.LeakyReLU(0.2, True)]
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        self.net = nn.Sequential(*layers)
        dim = chans[-1]
        self.fc = nn.Sequential(nn.Linear(dim * base * base, dim), nn.LeakyReLU(0.2, True))
        self.out = nn.Linear(dim, 1)
        self.embed = nn.Embedding(num_classes, dim) if num_classes else None
        self.num_classes, self.dim = num_classes, dim

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(self.net(images).flatten(1))
        score = self.out(h).squeeze(1)
        if self.embed is not None:  # projection discriminator (Miyato & Koyama 2018)
            score = score + (self.embed(labels) * h).sum(dim=1) / math.sqrt(self.dim)
        return score
