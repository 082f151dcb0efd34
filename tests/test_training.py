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
