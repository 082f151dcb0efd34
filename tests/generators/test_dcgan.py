import pytest
import torch

from generators.base import StyleGenerator, frozen
from generators.dcgan import DCGAN, DCGANDiscriminator
from genprior.errors import ConfigError

TINY = dict(z_dim=8, embed_dim=4, channel_base=64, channel_max=16)


@pytest.mark.parametrize("resolution,channels", [(28, 1), (32, 3), (64, 3)])
def test_shapes_and_range(resolution, channels):
    torch.manual_seed(0)
    g = frozen(DCGAN(resolution, channels, 3, **TINY))
    y = torch.arange(5) % 3
    x = g.decode(g.sample_latents(y), y)
    assert x.shape == (5, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    d = DCGANDiscriminator(resolution, channels, 3, channel_base=64, channel_max=16)
    assert d(x, y).shape == (5,)


def test_only_z_latents():
    g = DCGAN(28, 1, 3, **TINY)
    y = torch.arange(3)
    # not style-based: no W, W+ or F_n, and no methods for them (generators/base.py)
    assert g.latent_spec == {"z": (8,)} and not isinstance(g, StyleGenerator)
    assert not any(hasattr(g, m) for m in ("to_f", "from_f", "mean_w", "num_layers"))
    for kind in ("w", "w+", "f"):
        with pytest.raises(ConfigError, match="valid: z$"):
            g.sample_latents(y, kind)
    with pytest.raises(ConfigError, match="truncation"):
        g.sample_latents(y, "z", truncation=0.5)


def test_frozen_decode_is_deterministic_and_differentiable_in_z():
    g = frozen(DCGAN(32, 3, 3, **TINY))
    y = torch.tensor([0, 1, 2, 0])
    z = g.sample_latents(y, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    a, b = g.decode(z, y), g.decode(z, y)
    assert torch.equal(a, b)
    a.sum().backward()
    assert z.grad.abs().sum() > 0


def test_unconditional():
    g = frozen(DCGAN(28, 1, 0, **TINY))
    assert g.decode(g.sample_latents(torch.zeros(2))).shape == (2, 1, 28, 28)
    assert DCGANDiscriminator(28, 1, 0, channel_base=64, channel_max=16)(torch.zeros(2, 1, 28, 28)).shape == (2,)
