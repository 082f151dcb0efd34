"""The generators shipped in assets/ load, and their samples show the class they were asked for."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from generators.diffusion import load_diffusion
from generators.io import load_generator
from genprior.data import load_split, to_unit
from tests.conftest import needs_fashion_mnist

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "generators"
GANS = sorted(p.with_suffix("") for p in ASSETS.glob("*.json"))  # <stem>.safetensors + <stem>.json
DIFFUSION = sorted(p for p in ASSETS.iterdir() if (p / "model_index.json").is_file())  # diffusers folders
SHIPPED = GANS + DIFFUSION


def load(stem: Path):
    """A shipped generator as the presets sample it (diffusion: 10 DDIM steps, no guidance)."""
    return load_diffusion(stem, steps=10) if stem in DIFFUSION else load_generator(stem)


def test_assets_are_complete():
    assert GANS and DIFFUSION
    for stem in GANS:
        assert stem.with_suffix(".safetensors").is_file(), stem
        info = json.loads(stem.with_suffix(".json").read_text())["info"]
        assert info["command"] and info["steps"] > 0 and info["wall_seconds"] > 0, stem
    for folder in DIFFUSION:
        assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file(), folder
        info = json.loads((folder / "genprior.json").read_text())["info"]
        assert info["command"] and info["steps"] > 0 and info["wall_seconds"] > 0 and info["fid"]["fid"], folder
        assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 20 * 2**20  # small enough for git


@pytest.fixture(scope="module")
def fashion_classifier():
    """Logistic regression on 6000 real FashionMNIST images (~80 % test accuracy): a judge, not a model."""
    s = load_split("fashion_mnist", "train")
    idx = torch.arange(0, 60000, 10)
    x, y = to_unit(s.images[idx], "fashion_mnist", "normalized").flatten(1), s.labels[idx]
    torch.manual_seed(0)
    clf = torch.nn.Linear(784, 10)
    opt = torch.optim.Adam(clf.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(clf(x), y).backward()
        opt.step()
    return clf


PER_CLASS = 20


@pytest.fixture(scope="module")
def samples():
    """PER_CLASS samples a class of a shipped generator in [-1, 1], drawn once for both tests
    below (the UNet's 10 DDIM steps take most of a minute for 200 images)."""
    cache = {}

    def draw(stem: Path) -> tuple[torch.Tensor, torch.Tensor]:
        if stem not in cache:
            g = load(stem)
            labels = torch.arange(10).repeat_interleave(PER_CLASS)
            with torch.no_grad():
                x = g.decode(g.sample_latents(labels, "z", torch.Generator().manual_seed(0)), labels, "z")
            cache[stem] = x.clamp(-1, 1), labels
        return cache[stem]

    return draw


@needs_fashion_mnist
@pytest.mark.parametrize("stem", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_generator_makes_its_classes(stem, fashion_classifier, samples):
    if not stem.name.startswith("fashion_mnist"):
        pytest.skip("class check written for FashionMNIST generators")
    x, labels = samples(stem)
    with torch.no_grad():
        pred = fashion_classifier(((x + 1) / 2).flatten(1)).argmax(1)
    accuracy = (pred == labels).float().mean().item()
    assert accuracy > 0.6, f"{stem.name}: a real-data classifier labels only {accuracy:.0%} of samples as asked"


def within_class_spread(x: torch.Tensor) -> float:
    """x: [classes, n, ...] in [-1, 1] -> RMS distance of an image to its class mean."""
    x = x.flatten(2)
    return (x - x.mean(1, keepdim=True)).square().sum(-1).mean().sqrt().item()


@needs_fashion_mnist
@pytest.mark.parametrize("stem", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_generator_varies_within_a_class(stem, samples):
    """A generator that renders one image per class passes the class check but gives GLaD ten
    copies of one image at IPC 10: its samples must spread at least half as far as real ones
    (measured at 20 a class: 0.79-0.88 of the real spread for the shipped three)."""
    if not stem.name.startswith("fashion_mnist"):
        pytest.skip("written for FashionMNIST generators")
    s = load_split("fashion_mnist", "train")
    gen = torch.Generator().manual_seed(0)
    members = [torch.nonzero(s.labels == c).flatten() for c in range(10)]
    idx = torch.stack([m[torch.randperm(len(m), generator=gen)[:PER_CLASS]] for m in members])
    real = within_class_spread(to_unit(s.images[idx], "fashion_mnist", "normalized") * 2 - 1)
    x, _ = samples(stem)
    fake = within_class_spread(x.view(10, PER_CLASS, *x.shape[1:]))
    assert fake > 0.5 * real, f"{stem.name}: within-class spread {fake:.2f}, real {real:.2f}"
