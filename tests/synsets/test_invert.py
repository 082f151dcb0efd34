"""Latents inverted from real images (genprior/synsets/invert.py) on a tiny StyleGAN2."""
from pathlib import Path

import pytest
import torch

from genprior.context import DatasetOptions, RunContext
from genprior.data import to_unit
from genprior.synsets import invert as inversion
from genprior.synsets.base import real_start
from genprior.synsets.gan import GanSynset
from genprior.synsets.invert import InvertSpec
from tests.synsets.test_gan import _patch_toy_dataset, split, stylegan2

SPEC = InvertSpec(steps=40, lr=0.1, batch=4)  # 3 classes x ipc 2 = 6 items: two batches


def inverted(space, cache: Path, spec=SPEC, generator=None, real=None, seed=0):
    real = real or split()
    s = GanSynset(real, 2, generator or stylegan2(), space=space, layer=1 if space == "f" else None,
                  data_space="unit", init="invert", seed=seed)
    ctx = RunContext(real, 2, seed, DatasetOptions("toy", None, None, "unit"), cache_dir=cache)
    start = {n: p.detach().clone() for n, p in s.named_parameters()}
    line = s.invert_real(real, spec, ctx)
    return s, start, line


def error(s, real, seed=0) -> torch.Tensor:
    targets = to_unit(real_start(real, s.items_per_class, seed)[0], "toy", "unit") * 2 - 1  # in [-1, 1], as decoded
    with torch.no_grad():
        return (s.decode(torch.arange(len(s))) - targets).pow(2).flatten(1).mean(1)


@pytest.mark.parametrize("space", ["z", "w", "w+", "f"])
def test_inversion_lowers_the_error_of_every_item_and_is_deterministic(space, tmp_path, monkeypatch):
    _patch_toy_dataset(monkeypatch)
    s, start, line = inverted(space, tmp_path / "a")
    fresh = GanSynset(split(), 2, stylegan2(), space=space, layer=1 if space == "f" else None, data_space="unit",
                      init="invert")
    before, after = error(fresh, split()), error(s, split())
    assert (after < before).all() and after.mean() < 0.9 * before.mean(), (before, after)
    assert f"{before.mean():.4f} -> {after.mean():.4f}" in line and "built in" in line
    again, _, _ = inverted(space, tmp_path / "b")  # another cache: computed anew, the same latents
    for (name, p), (_, q) in zip(s.named_parameters(), again.named_parameters()):
        assert torch.equal(p, q), name
        assert not torch.equal(p, start[name]), name


def test_the_batch_does_not_change_the_result(tmp_path, monkeypatch):
    # each item has its own loss and the other items' Adam moments stay zero
    _patch_toy_dataset(monkeypatch)
    a, _, _ = inverted("w+", tmp_path / "a", InvertSpec(steps=20, lr=0.1, batch=6))
    b, _, _ = inverted("w+", tmp_path / "b", InvertSpec(steps=20, lr=0.1, batch=2))
    torch.testing.assert_close(a.latents, b.latents, rtol=1e-4, atol=1e-5)


INVERT_BATCH = inversion.invert_batch


class Killed(Exception):
    """A kill between batches (not KeyboardInterrupt: pytest would stop the session)."""


def count_batches(monkeypatch, fail_at: int | None = None) -> list:
    calls, real_batch = [], INVERT_BATCH

    def counted(*args, **kwargs):
        if fail_at is not None and len(calls) == fail_at:
            raise Killed
        calls.append(1)
        return real_batch(*args, **kwargs)
    monkeypatch.setattr(inversion, "invert_batch", counted)
    return calls


def test_a_cached_inversion_is_reused_and_recomputed_when_its_inputs_change(tmp_path, monkeypatch):
    _patch_toy_dataset(monkeypatch)
    cache = tmp_path / "cache"
    first, _, _ = inverted("w+", cache)
    calls = count_batches(monkeypatch)
    again, _, line = inverted("w+", cache)
    assert calls == [] and "cached" in line and torch.equal(first.latents, again.latents)

    inverted("w", cache)  # another space
    assert len(calls) == 2
    torch.manual_seed(1)
    other = stylegan2()
    with torch.no_grad():
        next(other.parameters()).add_(0.01)  # another generator (one weight differs)
    inverted("w+", cache, generator=other)
    assert len(calls) == 4
    images = split()
    images.images[0] = 1 - images.images[0]  # other real images
    inverted("w+", cache, real=images)
    assert len(calls) == 6
    inverted("w+", cache, seed=1)  # another seed draws other images
    assert len(calls) == 8
    assert len(list((cache / "inversion").iterdir())) == 5


def test_a_killed_inversion_keeps_its_finished_batches_and_ends_equal(tmp_path, monkeypatch):
    _patch_toy_dataset(monkeypatch)
    calls = count_batches(monkeypatch, fail_at=1)
    with pytest.raises(Killed):
        inverted("w+", tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("batch_*.safetensors"))) == 1
    calls = count_batches(monkeypatch)
    resumed, _, _ = inverted("w+", tmp_path / "cache")
    assert len(calls) == 1  # only the missing batch
    straight, _, _ = inverted("w+", tmp_path / "straight")
    assert torch.equal(resumed.latents, straight.latents)


def test_an_lpips_term_without_its_weights_is_one_line(tmp_path, monkeypatch):
    from genprior.errors import ConfigError
    from genprior.metrics import diversity

    _patch_toy_dataset(monkeypatch)
    weights_path = diversity.alexnet_weights_path
    monkeypatch.setattr(diversity, "alexnet_weights_path", lambda: tmp_path / "absent.pth")
    with pytest.raises(ConfigError, match="set synset.invert.perceptual=0"):
        inverted("w+", tmp_path / "cache", InvertSpec(steps=2, perceptual=0.5))
    # a file where torchvision reads AlexNet that is no AlexNet: one line too, not a traceback
    monkeypatch.setattr(diversity, "alexnet_weights_path", weights_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights_path().parent.mkdir(parents=True)
    weights_path().write_bytes(b"corrupt")
    with pytest.raises(ConfigError, match="could not load its backbone.*set synset.invert.perceptual=0"):
        inverted("w+", tmp_path / "cache", InvertSpec(steps=2, perceptual=0.5))


def test_inversion_leaves_no_gradient_behind_even_with_a_finetuned_generator(tmp_path, monkeypatch):
    # a stale .grad would be added to the distillation's first step
    _patch_toy_dataset(monkeypatch)
    real = split()
    s = GanSynset(real, 2, stylegan2(), space="w+", data_space="unit", init="invert", finetune=True)
    generator_before = [p.detach().clone() for p in s.generator.parameters()]
    s.invert_real(real, InvertSpec(steps=3, batch=4), RunContext(real, 2, 0, DatasetOptions("toy", None, None, "unit"),
                                                                   cache_dir=tmp_path))
    assert all(p.grad is None for p in s.parameters())
    assert all(torch.equal(p, q) for p, q in zip(s.generator.parameters(), generator_before))  # only latents move


def test_each_rank_builds_its_own_batches_whenever_the_others_finish(tmp_path, monkeypatch):
    # 2 ranks, 3 batches: rank 1 builds batch 1 before rank 0 starts looking. Rank 0 must still
    # build batches 0 and 2 (a split of "what is missing now" by position would give it 0 only)
    from genprior.errors import ConfigError

    _patch_toy_dataset(monkeypatch)
    real, spec = split(), InvertSpec(steps=5, lr=0.1, batch=2)

    def run(rank: int) -> GanSynset:
        s = GanSynset(real, 2, stylegan2(), space="w+", data_space="unit", init="invert")
        ctx = RunContext(real, 2, 0, DatasetOptions("toy", None, None, "unit"), rank=rank, world=2,
                         cache_dir=tmp_path / "shared")
        s.invert_real(real, spec, ctx)
        return s

    with pytest.raises(ConfigError, match="batch 0 missing after the build"):  # alone, it cannot finish
        run(1)
    together = run(0)
    alone, _, _ = inverted("w+", tmp_path / "alone", spec)
    torch.testing.assert_close(together.latents, alone.latents)
