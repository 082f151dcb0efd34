"""Pieces the objectives share: their base and common options, the per-class base of DC and DM,
seeded fresh networks and siamese-augmented class batches."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genprior.augment import DSA, dsa_or_none
from genprior.data import Split
from genprior.nets import NETS, seeded_net
from genprior.options import option
from genprior.rng import derive_seed, seeded


@dataclass
class ObjectiveOptions:
    """Keys every objective's config section has (configs/objective/); each objective adds its own."""
    net: str = option(choices=tuple(sorted(NETS)))
    net_kwargs: dict | None = option()
    dsa: str = option()

    def __post_init__(self):
        DSA(self.dsa)  # an unknown op is one line naming the valid ones, before anything runs


class Objective:
    """What the loop asks of every objective besides its call (genprior/objectives/__init__.py).
    The defaults are those of an objective the set learns no lr from and that keeps no state."""
    init_lr: float | None = None  # where the set's learned training lr starts (MTT); None: it learns none
    setup: str | None = None  # what building it did beyond the objective itself (the run's start line)

    def units(self) -> int:
        """Independent work units per step, split among the ranks."""
        raise NotImplementedError  # abstract

    def state_dict(self) -> dict:
        """What a checkpoint keeps of it (DC: the network that follows the set)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ClassObjective(Objective):
    """An objective whose unit of work is one class (DC, DM): a step's classes are split among
    the ranks, and each matches its classes' real and synthetic batches under one network."""

    def __init__(self, real: Split, net: str, batch_real: int, dsa: str, seed: int, net_kwargs: dict | None):
        self.real, self.net_name, self.batch_real, self.seed = real, net, batch_real, seed
        self.dsa = dsa_or_none(dsa, real.info.flip_ok)
        self.net_kwargs = dict(net_kwargs or {})

    def units(self) -> int:
        return self.real.info.num_classes


def fresh_net(name: str, real: Split, seed: int, device, **net_kwargs) -> nn.Module:
    """A randomly initialized network, the same on every rank for the same seed, the global RNG
    untouched (genprior.nets.seeded_net): nothing else in the run depends on how many networks
    were built before."""
    info = real.info
    return seeded_net(name, info.channels, info.num_classes, real.images.shape[-1], seed, **net_kwargs).to(device)


def class_batches(real: Split, images: torch.Tensor, labels: torch.Tensor, classes: list[int], n_real: int,
                  dsa: DSA | None, seed: int, step: int):
    """For each class: n_real real images and the class's synthetic images, augmented alike.

    The real batch and the synthetic batch of a class share one DSA seed in siamese mode,
    so both see the very same transform (the S in DSA). Yields (c, real_c, syn_c)."""
    for c in classes:
        s = derive_seed(seed, step, c)
        real_c = real.sample_class(c, n_real, seeded(s)).to(images.device, non_blocking=True)
        syn_c = images[labels == c]
        if dsa is not None:
            real_c, syn_c = dsa(real_c, s, siamese=True), dsa(syn_c, s, siamese=True)
        yield c, real_c, syn_c
