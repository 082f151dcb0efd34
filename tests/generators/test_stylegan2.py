import pytest
import torch

from generators.base import frozen
from generators.layers import base_and_blocks
from generators.stylegan2 import StyleGAN2, StyleGAN2Discriminator
from genprior.errors import ConfigError

TINY = dict(z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16)


def tiny(resolution=28, channels=1, num_classes=3, **kw):
    torch.manual_seed(0)
    return StyleGAN2(resolution, channels, num_classes, **{**TINY, **kw})


def labels(n=4, k=3):
    return torch.arange(n) % k


@pytest.mark.parametrize("resolution,base,blocks", [(28, 7, 2), (32, 4, 3), (64, 4, 4), (48, 6, 3), (8, 4, 1)])
def test_base_size_rule(resolution, base, blocks):
    assert base_and_blocks(resolution) == (base, blocks)


@pytest.mark.parametrize("resolution", [30, 9, 100, 3])
def test_impossible_resolution_is_one_line(resolution):
    with pytest.raises(ConfigError, match="b \\* 2\\*\\*k"):
        StyleGAN2(resolution, 1, 0, **TINY)


@pytest.mark.parametrize("resolution,channels", [(28, 1), (28, 3), (32, 1), (32, 3), (64, 3)])
def test_shapes_every_kind(resolution, channels):
    g = tiny(resolution, channels)
    y = labels()
    spec = g.latent_spec
    assert spec["z"] == (8,) and spec["w"] == (16,) and spec["w+"] == (g.num_ws, 16)
    assert g.num_ws == 2 * g.num_layers and sorted(spec["f"]) == list(range(1, g.num_layers))
    for kind in ("z", "w", "w+"):
        lat = g.sample_latents(y, kind)
        assert lat.shape == (4, *spec[kind])
        assert g.decode(lat, y, kind).shape == (4, channels, resolution, resolution)
    d = StyleGAN2Discriminator(resolution, channels, 3, channel_base=64, channel_max=16, cmap_dim=8)
    assert d(g.decode(g.sample_latents(y), y), y).shape == (4,)


def test_deterministic_decode_and_seeded_sampling():
    g = tiny()
    y = labels()
    z1 = g.sample_latents(y, "z", torch.Generator().manual_seed(3))
    z2 = g.sample_latents(y, "z", torch.Generator().manual_seed(3))
    assert torch.equal(z1, z2)
    assert torch.equal(g.decode(z1, y), g.decode(z1, y))  # const noise: a pure function


def test_noise_modes_differ_once_noise_is_learned():
    g = tiny()
    with torch.no_grad():
        for m in g.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.5)
    z, y = g.sample_latents(labels()), labels()
    const, none = g.decode(z, y), g.decode(z, y, noise_mode="none")
    assert not torch.equal(const, none)
    assert not torch.equal(g.decode(z, y, noise_mode="random"), const)
    with pytest.raises(ConfigError, match="noise_mode"):
        g.decode(z, y, noise_mode="fresh")


@pytest.mark.parametrize("resolution,channels", [(28, 1), (32, 3), (64, 3)])
def test_split_at_every_block_equals_full_forward(resolution, channels):
    g = tiny(resolution, channels)
    with torch.no_grad():
        for m in g.modules():  # non-zero noise, so the split must also carry the noise handling
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.3)
    y = labels()
    ws = g.sample_latents(y, "w+", torch.Generator().manual_seed(1))
    full = g.decode(ws, y, "w+")
    for n in range(1, g.num_layers):
        f = g.to_f(ws, n, y)
        assert f.shape == (4, *g.f_shape(n))
        assert torch.equal(g.from_f(f, ws, n), full)


def test_bilinear_upsampling_splits_and_keeps_the_activation_scale():
    """upsample=bilinear (StyleGAN2's low-passed upsampling) renders w+ latents, splits at
    F_n like the full forward, and keeps a block's activations at the scale of the block before,
    where the 4x4 transposed conv's demodulation (16 taps, 4 seen per output) halves them. The
    input is smooth (constant over space, as a feature map is at this scale next to a pixel's
    period), and the output's std is taken inside the border the convolution pads."""
    y = labels(16)

    def conv0_over_input_std(upsample):
        g = tiny(28, 1, upsample=upsample, channel_base=512, channel_max=64)
        layer, x = g.blocks[1].conv0.conv, torch.randn(16, 64, 1, 1).expand(-1, -1, 7, 7)
        ws = g.map_w(g.sample_latents(y, "z", torch.Generator().manual_seed(0)), y)
        with torch.no_grad():
            return (layer(x, ws)[..., 2:-2, 2:-2].std() / x.std()).item(), g

    ratio_transposed, _ = conv0_over_input_std("transposed")
    ratio_bilinear, g = conv0_over_input_std("bilinear")
    assert ratio_transposed < 0.6 < 0.8 < ratio_bilinear < 1.25, (ratio_transposed, ratio_bilinear)
    ws = g.sample_latents(y, "w+", torch.Generator().manual_seed(1))
    full = g.decode(ws, y, "w+")
    assert full.shape == (16, 1, 28, 28) and torch.equal(g.from_f(g.to_f(ws, 1, y), ws, 1), full)
    with pytest.raises(ConfigError, match="upsample 'nearest'; valid: transposed, bilinear"):
        tiny(upsample="nearest")


def test_gradients_reach_w_wplus_and_f():
    g = frozen(tiny(32, 3))
    y = labels()
    for kind in ("w", "w+"):
        lat = g.sample_latents(y, kind).detach().requires_grad_(True)
        g.decode(lat, y, kind).square().sum().backward()
        assert lat.grad is not None and lat.grad.abs().sum() > 0
    ws = g.sample_latents(y, "w+").detach()
    f = g.to_f(ws, 2, y).detach().requires_grad_(True)
    g.from_f(f, ws, 2).square().sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    assert all(p.grad is None for p in g.parameters())  # frozen: the prior itself gets no grads


def test_truncation_zero_is_the_class_mean():
    g = tiny()
    y = torch.tensor([0, 1, 2, 1])
    w = g.sample_latents(y, "w", truncation=0.0)
    assert torch.allclose(w, g.mean_w(y))
    assert torch.equal(w[1], w[3]) and not torch.equal(w[0], w[1])
    with pytest.raises(ConfigError, match="truncation"):
        g.sample_latents(y, "z", truncation=0.7)


def test_bad_kinds_layers_and_labels():
    g = tiny()  # 28 px: 7 -> 14 -> 28, 3 blocks, so F_n for n = 1, 2
    ws = g.sample_latents(labels(), "w+")
    for n in (0, 3, -1, 1.0):
        with pytest.raises(ConfigError, match="valid: 1..2"):
            g.to_f(ws, n)
    with pytest.raises(ConfigError, match="valid: z, w, w\\+, f"):
        g.decode(ws, None, "s")
    with pytest.raises(ConfigError, match="to_f"):
        g.sample_latents(labels(), "f")
    with pytest.raises(ConfigError, match="pass labels"):
        g.decode(g.sample_latents(labels()), None, "z")
    with pytest.raises(ConfigError, match="0..2"):
        g.decode(torch.zeros(2, 8), torch.tensor([0, 3]), "z")
    with pytest.raises(ConfigError, match="F_1"):
        g.from_f(torch.zeros(4, 5, 7, 7), ws, 1)
    with pytest.raises(ConfigError, match="w\\+ latents"):
        g.decode(torch.zeros(4, 3, 16), None, "w+")


def test_one_block_generator_has_no_f():
    g = StyleGAN2(8, 1, 0, **TINY)
    assert g.num_layers == 2 and "f" in g.latent_spec
    g = StyleGAN2(4, 1, 0, **TINY)
    assert g.num_layers == 1 and "f" not in g.latent_spec
    with pytest.raises(ConfigError, match="no F_n"):
        g.to_f(g.sample_latents(torch.zeros(2), "w+"), 1)


def test_unconditional():
    g = tiny(num_classes=0)
    z = g.sample_latents(torch.zeros(3))
    assert g.decode(z).shape == (3, 1, 28, 28)
    assert g.mean_w(torch.zeros(3)).shape == (3, 16)
    d = StyleGAN2Discriminator(28, 1, 0, channel_base=64, channel_max=16)
    assert d(g.decode(z)).shape == (3,)


def test_decoding_in_chunks_matches_one_batch():
    # the constant-memory backward (docs/design.md) re-renders chunk by chunk
    g = frozen(tiny(32, 3))
    y = torch.arange(6) % 3
    ws = g.sample_latents(y, "w+", torch.Generator().manual_seed(0))
    whole = g.decode(ws, y, "w+")
    chunks = torch.cat([g.decode(ws[i:i + 2], y[i:i + 2], "w+") for i in range(0, 6, 2)])
    assert torch.allclose(whole, chunks, atol=1e-5)
