import pytest
import torch

import genprior.objectives.dm as dm_module
from genprior.objectives.dm import DM
from tests.toys import Flatten, toy_split


def test_dm_loss_and_gradient_by_hand(monkeypatch):
    # with embed = identity, L = sum_c (mean real_c - mean syn_c)^2
    monkeypatch.setattr(dm_module, "fresh_net", lambda *a, **k: Flatten())
    real = toy_split([[1.0, 3.0], [5.0, 7.0]])  # class means 2 and 6
    dm = DM(real, batch_real=2, dsa="none")
    images = torch.tensor([0.0, 10.0]).view(2, 1, 1, 1).requires_grad_(True)
    loss = dm(images, torch.tensor([0, 1]), step=0, units=[0, 1])
    assert loss.item() == pytest.approx((2 - 0) ** 2 + (6 - 10) ** 2)
    loss.backward()
    assert images.grad.view(-1).tolist() == pytest.approx([-2 * (2 - 0), -2 * (6 - 10)])


def test_dm_real_network_gradients_and_unit_shares():
    real = toy_split([[0.1 * i for i in range(6)], [1 + 0.1 * i for i in range(6)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()
    dm = DM(real, net="convnet", batch_real=4, seed=3, net_kwargs={"width": 8, "depth": 2})
    images = torch.randn(4, 1, 8, 8, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    full = dm(images, labels, 5, [0, 1])
    full.backward()
    assert images.grad.abs().sum() > 0
    shares = dm(images, labels, 5, [0]) + dm(images, labels, 5, [1])
    assert shares.item() == pytest.approx(full.item(), rel=1e-4)
    assert dm(images, labels, 5, [0, 1]).item() == full.item()  # same step -> same net, batch, DSA
    assert dm(images, labels, 6, [0, 1]).item() != full.item()  # another step -> another draw


def test_compiled_embedding_matches_eager_and_follows_new_weights():
    real = toy_split([[0.1 * i for i in range(6)], [1 + 0.1 * i for i in range(6)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1])
    eager, compiled = [DM(real, batch_real=4, seed=3, net_kwargs={"width": 8, "depth": 1}, compile=c)
                       for c in (False, True)]
    losses = [(eager(images, labels, s, [0, 1]).item(), compiled(images, labels, s, [0, 1]).item())
              for s in range(3)]
    for a, b in losses:
        assert b == pytest.approx(a, rel=1e-5)
    assert losses[0][1] != losses[1][1]  # the compiled graph runs on each step's fresh weights


def test_a_batchnorm_network_sees_all_real_images_in_one_batch():
    """BatchNorm normalizes by its batch: real images in per-class chunks would each be
    normalized by their own class (its mean, the thing matched, largely erased)."""
    real = toy_split([[0.1 * i for i in range(6)], [3 + 0.1 * i for i in range(6)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1])
    losses = [DM(real, net="convnet_bn", batch_real=4, seed=3, dsa="none", chunk_real=chunk,
                 net_kwargs={"width": 8, "depth": 2})(images, labels, 0, [0, 1]).item() for chunk in (4, 64)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
