import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# The suite's tensors are tiny: a second intra-op thread costs more in hand-offs than it
# computes. One thread, set here for every test (every suite time in README.md was measured
# so); subprocess tests choose their own (genprior/host.py's cpu_threads, `threads=`).
torch.set_num_threads(1)

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fashion_mnist = pytest.mark.skipif(not FASHION_MNIST.exists(),
                                         reason="FashionMNIST IDX files not installed (make data)")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's ~/.cache/genprior from tests."""
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path_factory.getbasetemp() / "genprior-cache"))
    monkeypatch.setenv("GENPRIOR_DATA", str(tmp_path_factory.getbasetemp() / "no-data-here"))


@pytest.fixture
def bench(monkeypatch):
    """Import a bench/ script by name, as the scripts import their siblings: bench("lr_sweep")."""
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    return importlib.import_module
