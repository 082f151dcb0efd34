import numpy as np
import pytest
import torch

from genprior.metrics import diversity
from genprior.metrics.diversity import feature_diversity, lpips_diversity, pairwise_mean


def test_pairwise_mean_by_hand():
    # pairs: (a,b) 5, (a,c) 0, (b,c) 5 -> 10 / 3
    assert pairwise_mean(np.array([[0.0, 0], [3, 4], [0, 0]])) == pytest.approx(10 / 3)
    assert pairwise_mean(np.zeros((1, 2))) is None


def test_feature_diversity_is_per_class():
    feats = np.array([[0.0, 0], [3, 4], [10, 10], [10, 10]])
    d = feature_diversity(feats, np.array([0, 0, 1, 1]))
    assert d["per_class"] == {"0": pytest.approx(5.0), "1": pytest.approx(0.0)}
    assert d["mean"] == pytest.approx(2.5)


def test_lpips_without_backbone_weights_is_unavailable_not_random(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    x = torch.rand(4, 1, 28, 28)
    out = lpips_diversity(x, torch.tensor([0, 0, 1, 1]))
    assert set(out) == {"unavailable"} and "alexnet" in out["unavailable"].lower()


@pytest.fixture
def stand_in_alexnet(tmp_path, monkeypatch):
    """A random AlexNet file at the path torchvision reads: the LPIPS path itself is what is tested."""
    from torchvision.models import alexnet

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path = diversity.alexnet_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(alexnet().state_dict(), path)
    return path


def test_lpips_with_backbone_file_runs_per_class(stand_in_alexnet):
    path = stand_in_alexnet
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=g)
    x[3] = x[4]  # class 1 holds two identical images: LPIPS 0
    out = lpips_diversity(x, torch.tensor([0, 0, 0, 1, 1]))
    assert out["per_class"]["1"] == pytest.approx(0.0, abs=1e-6)
    assert out["per_class"]["0"] > 0 and out["upsampled_to"] == 64
    x[1] = x[0]  # capped at 2 per class, class 0 is two identical images
    assert lpips_diversity(x, torch.tensor([0, 0, 0, 1, 1]), max_per_class=2)["per_class"]["0"] == \
        pytest.approx(0.0, abs=1e-6)

    path.write_bytes(b"corrupt")
    assert "could not load" in lpips_diversity(x, torch.tensor([0, 0, 0, 1, 1]))["unavailable"]


def test_lpips_distance_is_one_set_up_for_the_metric_and_the_inversion_loss(stand_in_alexnet):
    distance = diversity.lpips_distance("cpu")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 1, 28, 28, generator=g) * 2 - 1).requires_grad_(True)
    y = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    d = distance(x, y)
    assert d.shape == (3,) and d.requires_grad  # per pair, a loss the images can follow
    prepared = diversity.lpips_input(x)
    assert prepared.shape == (3, 3, 64, 64) and diversity.lpips_input(prepared) is prepared  # prepared once, as is
    assert torch.equal(distance(prepared, diversity.lpips_input(y)), d)
