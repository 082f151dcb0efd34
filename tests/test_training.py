import torch

from genprior.augment import DSA
from genprior.nets import build_net
from genprior.training import train_epoch


def test_train_epoch_learns_a_separable_toy_and_seeds_augmentation_per_batch():
    torch.manual_seed(0)
    images = torch.cat([torch.full((16, 1, 8, 8), -1.0), torch.full((16, 1, 8, 8), 1.0)])
    images = images + 0.1 * torch.randn_like(images)
    labels = torch.tensor([0] * 16 + [1] * 16)
    net = build_net("mlp", 1, 2, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seeds, steps = [], []
    order = torch.randperm(32)
    first = train_epoch(net, opt, images, labels, order, batch=8, dsa=DSA("crop"),
                        dsa_seed=lambda start: seeds.append(start) or start, on_step=lambda: steps.append(1))
    assert seeds == [0, 8, 16, 24] and len(steps) == 4  # one seed and one callback per batch
    for _ in range(20):
        last = train_epoch(net, opt, images, labels, order, batch=8)
    assert last < first and last < 0.1
    assert (net(images).argmax(1) == labels).all()


def test_compiled_forward_trains_like_eager_and_serves_every_network_of_the_architecture():
    from genprior.training import _COMPILED, compiled_forward

    images, labels = torch.randn(24, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(24) % 3
    order = torch.arange(24)
    trained = []
    for compiled in (False, True, True):  # the second compiled network reuses the first one's graph
        torch.manual_seed(1)
        net = build_net("convnet", 1, 3, 8, width=8, depth=2)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        forward = compiled_forward(net) if compiled else None
        for _ in range(3):
            train_epoch(net, opt, images, labels, order, batch=8, forward=forward)
        trained.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    torch.testing.assert_close(trained[1], trained[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(trained[1], trained[2])
    assert len([k for k in _COMPILED if "Conv2d(1, 8" in k]) == 1
