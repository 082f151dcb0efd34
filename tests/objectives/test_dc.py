import pytest
import torch

from genprior.nets import NETS
from genprior.objectives.dc import DC, layerwise_distance, loops_for
from tests.toys import AffineOnMean, toy_split


def test_layerwise_distance_by_hand():
    # rows are output units: row 0 points the same way (cos 1), row 1 is orthogonal (cos 0)
    g_syn = [torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([5.0, -5.0])]
    g_real = [torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([-1.0, 1.0])]  # 1-D: skipped
    d = layerwise_distance(g_syn, g_real)
    assert d.item() == pytest.approx((1 - 2 / (2 + 1e-6)) + 1.0, abs=1e-7)
    # conv weights [out, in, h, w] compare as [out, in*h*w]; opposite rows give 2 each
    w = torch.randn(3, 2, 3, 3)
    assert layerwise_distance([w], [-w]).item() == pytest.approx(6.0, abs=1e-4)
    assert layerwise_distance([w], [4 * w]).item() == pytest.approx(0.0, abs=1e-4)


def test_dc_loss_pairs_each_class_with_its_own_real_images_by_hand(monkeypatch):
    """With W = 0 the softmax is uniform, so the CE gradient of a batch of mean m for class c is
    (1/2 - [k = c]) (m, 1) in row k: both rows point along (m, 1), and a class's distance is
    2 (1 - cos((m_syn, 1), (m_real, 1))). Real means: class 0 at 1, class 1 at -1.
      class 0, synthetic m = 0: cos = 1/sqrt(2), distance 2 - sqrt(2); d/dm = -2 * d cos/dm = -sqrt(2)
      class 1, synthetic m = 1: cos((1, 1), (-1, 1)) = 0, distance 2; d cos/dm = -1/2, d/dm = 1"""
    monkeypatch.setitem(NETS, "affine_on_mean", AffineOnMean)
    real = toy_split([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    dc = DC(real, ipc=1, net="affine_on_mean", batch_real=2, dsa="none", outer_loop=1, inner_loop=0)
    images = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).requires_grad_()
    labels = torch.tensor([0, 1])
    loss = dc(images, labels, 0, [0, 1])
    assert loss.item() == pytest.approx((2 - 2 ** 0.5) + 2, abs=1e-5)
    loss.backward()
    assert images.grad.flatten().tolist() == pytest.approx([-(2 ** 0.5), 1.0], abs=1e-5)
    assert dc(images, labels, 0, [1]).item() == pytest.approx(2, abs=1e-5)  # one class: its own share


def test_dc_schedule_by_ipc():
    assert loops_for(1) == (1, 1) and loops_for(10) == (10, 50) and loops_for(50) == (50, 10)
    assert loops_for(12) == (10, 50)


def test_dc_gradients_reach_images_and_follow_the_schedule():
    real = toy_split([[0.1 * i for i in range(8)], [1 + 0.1 * i for i in range(8)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()  # 8x8 so a ConvNet fits
    dc = DC(real, ipc=2, net="convnet", batch_real=4, dsa="none", seed=0, outer_loop=2, inner_loop=1,
            net_kwargs={"width": 8, "depth": 2})
    images = torch.randn(4, 1, 8, 8, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss = dc(images, labels, 0, [0, 1])
    loss.backward()
    assert loss.item() > 0 and images.grad.abs().sum() > 0
    net0 = {k: v.clone() for k, v in dc.net.state_dict().items()}
    dc(images.detach(), labels, 1, [0, 1])  # within the round: the net trains on the set first
    assert any(not torch.equal(net0[k], v) for k, v in dc.net.state_dict().items())
    # the loss over a subset of classes is that subset's share: shares add up
    dc2 = DC(real, ipc=2, net="convnet", batch_real=4, dsa="none", seed=0, outer_loop=2, inner_loop=1,
             net_kwargs={"width": 8, "depth": 2})
    parts = dc2(images, labels, 0, [0]) + dc2(images, labels, 0, [1])
    assert parts.item() == pytest.approx(loss.item(), rel=1e-5)


def test_dc_inner_loop_zero_keeps_the_network_and_only_none_takes_the_schedule():
    real = toy_split([[0.1 * i for i in range(8)], [1 + 0.1 * i for i in range(8)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()
    dc = DC(real, ipc=10, net="convnet", batch_real=4, dsa="none", outer_loop=2, inner_loop=0,
            net_kwargs={"width": 8, "depth": 2})
    assert (dc.outer_loop, dc.inner_loop) == (2, 0)  # not the IPC-10 schedule's 50
    assert (DC(real, ipc=10).outer_loop, DC(real, ipc=10).inner_loop) == loops_for(10)
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1])
    dc(images, labels, 0, [0, 1])
    net0 = {k: v.clone() for k, v in dc.net.state_dict().items()}
    dc(images, labels, 1, [0, 1])  # within the round: with no inner steps the network stays as it was
    assert all(torch.equal(net0[k], v) for k, v in dc.net.state_dict().items())


def test_dc_stopped_inside_its_inner_loop_resumes_to_the_same_network(monkeypatch):
    """A stop (Ctrl-C) while the network trains between two steps checkpoints the network of the
    step before, whole: the resumed run trains it again from there, as an unstopped run does."""
    import genprior.objectives.dc as dc_module

    real = toy_split([[0.1 * i for i in range(8)], [1 + 0.1 * i for i in range(8)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()
    make = lambda: DC(real, ipc=2, net="convnet", batch_real=4, dsa="none", seed=0, outer_loop=3, inner_loop=3,
                      net_kwargs={"width": 8, "depth": 2})
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1])
    straight = make()
    for step in range(3):
        want = straight(images, labels, step, [0, 1]).item()
    stopped = make()
    stopped(images, labels, 0, [0, 1])
    epochs = 0
    real_epoch = dc_module.train_epoch

    def stop_in_second_epoch(*args, **kwargs):
        nonlocal epochs
        epochs += 1
        if epochs == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(dc_module, "train_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        stopped(images, labels, 1, [0, 1])  # one epoch of three done, in place it would stay
    monkeypatch.setattr(dc_module, "train_epoch", real_epoch)
    resumed = make()
    resumed.load_state_dict(stopped.state_dict())  # what the stop's checkpoint holds
    assert resumed.at_step == 0
    resumed(images, labels, 1, [0, 1])
    assert resumed(images, labels, 2, [0, 1]).item() == want
    # resumed at the step it was ready for (a stop after the network trained): used as it is
    again = make()
    again.load_state_dict(resumed.state_dict())
    assert again(images, labels, 2, [0, 1]).item() == want


def test_a_step_puts_gradients_in_the_set_only():
    """The loss runs through DC's network (a double backward): only the images learn, so only
    they get a gradient; the network's parameters keep none (memory and kernels for nothing)."""
    import contextlib

    from genprior.run import distill_step
    from genprior.synsets.pixel import PixelSynset

    real = toy_split([[0.1 * i for i in range(8)], [1 + 0.1 * i for i in range(8)]])
    real.images = real.images.expand(-1, 1, 8, 8).contiguous()
    synset = PixelSynset(real, ipc=2, seed=0)
    dc = DC(real, ipc=2, net="convnet", batch_real=4, dsa="none", seed=0, outer_loop=2, inner_loop=1,
            net_kwargs={"width": 8, "depth": 2})
    loss = distill_step(synset, dc, 0, [0, 1], chunk=4, autocast=contextlib.nullcontext)
    assert loss.item() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in synset.parameters() if p.requires_grad)
    assert all(p.grad is None for p in dc.net.parameters())
