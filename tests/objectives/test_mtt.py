import pytest
import torch

from genprior.nets import NETS
from genprior.objectives.mtt import MTT
from tests.toys import TwoWeights, toy_split


@pytest.fixture
def two_weights(monkeypatch):
    monkeypatch.setitem(NETS, "two_weights", TwoWeights)


def make(mode, trajectory, syn_steps=1, **kw):
    real = toy_split([[1.0], [1.0]])
    return MTT(real, [trajectory], net="two_weights", syn_steps=syn_steps, expert_epochs=1, max_start_epoch=1,
               dsa="none", mode=mode, **kw)


def test_normalized_distance_on_a_two_parameter_toy(two_weights):
    # start (0, 0), target (1, 1). One student step on one image x=1 of class 0:
    # CE = log(e^w0 + e^w1) - w0, grad at 0 = (p0 - 1, p1) = (-0.5, 0.5); lr 0.1 -> theta_1 = (0.05, -0.05)
    # L = ((0.05 - 1)^2 + (-0.05 - 1)^2) / ((0 - 1)^2 + (0 - 1)^2) = 1.0025
    mtt = make("exact", torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    images = torch.ones(1, 1, 1, 1, requires_grad=True)
    lr = torch.tensor(0.1, requires_grad=True)
    loss = mtt(images, torch.tensor([0]), 0, [0], lr)
    assert loss.item() == pytest.approx(1.0025, abs=1e-6)
    loss.backward()
    assert images.grad.abs().sum() > 0
    # dL/dlr = 2 (theta_1 - target) . (-grad) / 2 = (-0.95)(0.5) + (-1.05)(-0.5) = 0.05
    assert lr.grad.item() == pytest.approx(0.05, abs=1e-6)


def test_constant_memory_equals_exact_for_one_step_and_tracks_it_for_more(two_weights):
    trajectory = torch.tensor([[0.0, 0.0], [1.0, -0.5]])
    labels = torch.tensor([0, 1, 0])
    x0 = torch.tensor([1.0, -2.0, 0.5]).view(3, 1, 1, 1)
    grads = {}
    for steps in (1, 4):
        for mode in ("exact", "constant_memory"):
            images = x0.clone().requires_grad_(True)
            lr = torch.tensor(0.3, requires_grad=True)
            loss = make(mode, trajectory, steps)(images, labels, 0, [0], lr)
            if loss.requires_grad:
                loss.backward()
            grads[steps, mode] = (loss.item(), images.grad.clone(), lr.grad.clone())
    (le, ge, lre), (lc, gc, lrc) = grads[1, "exact"], grads[1, "constant_memory"]
    assert lc == pytest.approx(le) and torch.allclose(gc, ge, atol=1e-6) and torch.allclose(lrc, lre, atol=1e-6)
    (le, ge, _), (lc, gc, _) = grads[4, "exact"], grads[4, "constant_memory"]
    assert lc == pytest.approx(le)  # the loss value is exact in both modes
    cos = torch.nn.functional.cosine_similarity(ge.flatten(), gc.flatten(), dim=0)
    assert cos > 0.9 and not torch.allclose(ge, gc)  # an approximation, not the same gradient


def test_bad_segment_settings_are_refused(two_weights):
    from genprior.errors import ConfigError

    real = toy_split([[1.0], [1.0]])
    with pytest.raises(ConfigError, match="expert epochs"):
        MTT(real, [torch.zeros(3, 2)], net="two_weights", expert_epochs=2, max_start_epoch=2)
    with pytest.raises(ConfigError, match="another network"):
        MTT(real, [torch.zeros(3, 5)], net="two_weights", expert_epochs=1, max_start_epoch=1)


def test_a_student_with_batch_syn_sees_every_image_once_per_pass(two_weights):
    real = toy_split([[1.0], [1.0]])
    mtt = MTT(real, [torch.zeros(2, 2)], net="two_weights", syn_steps=7, expert_epochs=1, max_start_epoch=1,
              dsa="none", batch_syn=3)
    images, labels = torch.arange(7.0).view(7, 1, 1, 1), torch.arange(7) % 2
    seen = [mtt._batch(images, labels, seed=5, i=i)[0].flatten().tolist() for i in range(6)]
    assert [len(s) for s in seen] == [3, 3, 1, 3, 3, 1]  # 7 images in chunks of 3: three student steps a pass
    for first in (0, 3):
        assert sorted(sum(seen[first:first + 3], [])) == list(range(7))
    assert seen[:3] != seen[3:]  # each pass its own order
    assert seen == [mtt._batch(images, labels, seed=5, i=i)[0].flatten().tolist() for i in range(6)]  # seeded


def test_the_signature_defaults_are_the_config_defaults():
    # MTT built from Python without a key behaves as a run that does not set it (configs/objective/mtt.yaml)
    import inspect

    from omegaconf import OmegaConf

    from genprior.shipped import CONFIG_DIR

    config = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "objective" / "mtt.yaml"))
    defaults = {k: p.default for k, p in inspect.signature(MTT).parameters.items() if p.default is not p.empty}
    shared = {k for k in defaults if k in config} - {"init_lr"}  # (the config's is an interpolation)
    assert {"syn_steps", "expert_epochs", "max_start_epoch", "trajectories_per_step"} <= shared
    assert {k: defaults[k] for k in shared} == {k: config[k] for k in shared}


@pytest.mark.parametrize("mode", ["exact", "constant_memory"])
def test_several_trajectories_per_step_average_and_their_shares_add_up(two_weights, mode):
    # one trajectory, one start epoch, no augmentation: every unit matches the same segment, so
    # two units per step must give one unit's loss and gradients, and two ranks' shares must sum to it
    def run(per_step, units):
        mtt = make(mode, torch.tensor([[0.0, 0.0], [1.0, -0.5]]), syn_steps=2, trajectories_per_step=per_step)
        images = torch.tensor([1.0, -2.0, 0.5]).view(3, 1, 1, 1).requires_grad_(True)
        lr = torch.tensor(0.1, requires_grad=True)
        loss = mtt(images, torch.tensor([0, 1, 0]), 0, units, lr)
        if loss.requires_grad:
            loss.backward()
        return loss.item(), images.grad.clone(), lr.grad.clone()

    one = run(1, [0])
    both = run(2, [0, 1])
    shares = [run(2, [u]) for u in (0, 1)]
    assert both[0] == pytest.approx(one[0], rel=1e-6) and sum(s[0] for s in shares) == pytest.approx(one[0], rel=1e-6)
    for k in (1, 2):
        torch.testing.assert_close(both[k], one[k])
        torch.testing.assert_close(shares[0][k] + shares[1][k], one[k])
