"""DM: distribution matching (Zhao & Bilen, 2023).

    L = sum_c || mean_i embed(real_c,i) - mean_j embed(syn_c,j) ||^2

with a freshly initialized network every step and a siamese DSA transform per class.
The network is never trained: random embeddings already separate distributions well,
which is what makes DM cheap. Real images need no gradient: they go through the
network without autograd, in chunks of `chunk_real` across class boundaries. On a CPU,
chunks of ~64 images ran 1.3x faster than one batch of all 2560 and than one class
(256) at a time (bench/results/), because the activations stay in cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from genprior.data import Split
from genprior.nets import has_batchnorm
from genprior.objectives.common import ClassObjective, ObjectiveOptions, class_batches, fresh_net
from genprior.options import option
from genprior.rng import derive_seed


class DM(ClassObjective):
    @dataclass
    class Options(ObjectiveOptions):
        batch_real: int = option(min=1)
        compile: bool = option()
        chunk_real: int = option(min=1)

    @classmethod
    def from_config(cls, o: Options, ctx) -> "DM":
        return cls(ctx.real, seed=ctx.seed, **vars(o))

    def __init__(self, real: Split, net: str = "convnet", batch_real: int = 256,
                 dsa: str = "color_crop_cutout_flip_scale_rotate", seed: int = 0, net_kwargs: dict | None = None,
                 compile: bool = False, chunk_real: int = 64):
        super().__init__(real, net, batch_real, dsa, seed, net_kwargs)
        self.compile, self.chunk_real = compile, chunk_real
        self._module, self._embed = None, None  # the one module a compiled graph runs on

    def _embedder(self, fresh: torch.nn.Module):
        """fresh.embed, or a compiled embed of one persistent module holding fresh's weights.

        A new module every step would make torch.compile trace again every step; copying
        the new random weights into the same module keeps one compiled graph."""
        if not self.compile:
            return fresh.embed
        if self._module is None:
            self._module = fresh
            self._embed = torch.compile(fresh.embed, dynamic=False)
        else:
            self._module.load_state_dict(fresh.state_dict())
        return self._embed

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, step: int, units: list[int],
                 lr: torch.Tensor | None = None) -> torch.Tensor:
        net = fresh_net(self.net_name, self.real, derive_seed(self.seed, step), images.device, **self.net_kwargs)
        net.requires_grad_(False)  # only the images learn
        embed = self._embedder(net)
        batches = list(class_batches(self.real, images, labels, units, self.batch_real, self.dsa, self.seed, step))
        reals, syns = [b[1] for b in batches], [b[2] for b in batches]
        real = torch.cat(reals)
        # small chunks: a [2560, 128, 28, 28] activation (1 GB) falls out of cache. A network with
        # BatchNorm normalizes by its batch: all classes' real images go through at once, as the
        # DM code does for BN networks (a chunk of one class would normalize its mean away)
        chunk = len(real) if has_batchnorm(net) else self.chunk_real
        with torch.no_grad():
            e_real = torch.cat([embed(x) for x in real.split(chunk)])
        e_syn = embed(torch.cat(syns))
        # means in float32: under bf16 autocast a class mean rounded to 8 bits would put a noise
        # floor under a loss that is a small difference of means
        mean_real = torch.stack([e.mean(0) for e in e_real.float().split([len(r) for r in reals])])
        mean_syn = torch.stack([e.mean(0) for e in e_syn.float().split([len(s) for s in syns])])
        return ((mean_real - mean_syn) ** 2).sum()
