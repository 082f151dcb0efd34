"""What a component may know about the run it is built for.

run.py builds every synset and objective as `Kind.from_config(options, ctx)`: `options`
is the component's own config section, already checked against `Kind.Options`
(genprior/options.py), and `ctx` is this small record of the run. Nothing else passes
between the loop and a component, so a new prior or objective needs no change in run.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from genprior.data import VALUE_SPACES, Split, cache_dir
from genprior.options import option


@dataclass
class DatasetOptions:
    """The `dataset` section of a run's config (configs/dataset/)."""
    name: str
    root: str | None = option()
    resolution: int | None = option(min=1)
    space: str = option(choices=tuple(s for s in VALUE_SPACES if s != "unit"))  # a split is normalized, or ZCA on top
    download: bool = option(False)  # fetch it with torchvision where none is found (CIFAR, SVHN, MNIST)


@dataclass
class RunContext:
    real: Split                      # the train split, in the dataset's value space
    ipc: int
    seed: int
    dataset: DatasetOptions
    rank: int = 0                    # this process among `world` (each computes its share of a step)
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cache_dir: Path = field(default_factory=cache_dir)  # built-once artifacts (experts, ...): $GENPRIOR_CACHE
    barrier: Callable[[], None] = lambda: None  # all ranks meet here (after rank-split artifact builds)
