import pytest
import torch
import torch.nn as nn

from genprior.errors import ConfigError
from genprior.synsets import PixelSynset, Synset
from tests.toys import check_chunked_gradient, toy_split


class TinyGenerator(Synset):
    """A nonlinear 'generator' synset: images = tanh(latents @ W), so chunking has something to get wrong."""

    def __init__(self, num_classes, ipc):
        super().__init__(num_classes, ipc)
        g = torch.Generator().manual_seed(0)
        self.latents = nn.Parameter(torch.randn(len(self), 5, generator=g))
        self.register_buffer("W", torch.randn(5, 16, generator=g))

    def render(self, index):
        return torch.tanh(self.latents[index] @ self.W).view(-1, 1, 4, 4)

    def groups(self):
        return {"latents": [self.latents]}

    def storage(self):
        return {"floats": self.latents.numel(), "counted": "latents"}


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_chunked_gradient_equals_plain_autograd(chunk):
    assert set(check_chunked_gradient(TinyGenerator(3, 4), chunk)) == {"latents"}


def test_pixel_synset_init_groups_and_storage():
    real = toy_split([[float(i) for i in range(5)], [10.0 + i for i in range(5)]])
    s = PixelSynset(real, ipc=3, init="real", seed=0)
    assert s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    imgs = s.render_all().view(-1)
    assert all(v < 5 for v in imgs[:3]) and all(v >= 10 for v in imgs[3:])  # class-consistent real init
    assert len(set(imgs[:3].tolist())) == 3  # distinct images
    s.learn_lr(0.01)
    groups = s.param_groups({"images": {"lr": 1.0, "momentum": 0.5}, "lr": {"lr": 1e-5}})
    assert [(g["name"], g["lr"], g["momentum"]) for g in groups] == [("images", 1.0, 0.5), ("lr", 1e-5, 0.0)]
    assert s.storage()["floats"] == 6 + 1
    with pytest.raises(ConfigError, match="this synset has: images, lr"):
        s.param_groups({"images": {"lr": 1.0}})
    with pytest.raises(ConfigError, match="valid: real, noise"):
        PixelSynset(real, ipc=1, init="zeros")
    with pytest.raises(ConfigError, match="smallest class"):
        PixelSynset(real, ipc=6)
    a = PixelSynset(real, ipc=2, init="noise", seed=4).images
    b = PixelSynset(real, ipc=2, init="noise", seed=4).images
    assert torch.equal(a, b)


def test_a_group_with_a_floor_is_held_at_it_after_each_update_and_the_others_are_not():
    """synset.optim.<group>.floor, as HaBa's official code holds MTT's learned lr >= 1e-3."""
    from genprior.run import hold_floors

    real = toy_split([[float(i) for i in range(5)], [10.0 + i for i in range(5)]])
    s = PixelSynset(real, ipc=2, init="real", seed=0)
    s.learn_lr(0.01)
    opt = torch.optim.SGD(s.param_groups({"images": {"lr": 1.0}, "lr": {"lr": 1.0, "floor": 1e-3}}))
    (s.lr * 5 + s.images.sum() * 100).backward()  # an update that takes the lr to -4.99, the images by -100
    opt.step()
    before = s.images.detach().clone()
    hold_floors(opt)
    assert s.lr.item() == pytest.approx(1e-3) and torch.equal(s.images, before)  # no floor: unheld
    with pytest.raises(ConfigError, match="floor must be a number"):
        s.param_groups({"images": {"lr": 1.0}, "lr": {"lr": 1.0, "floor": "low"}})
