import json

import pytest
import torch

from generators.dcgan import DCGAN
from generators.io import GENERATORS, build_generator, generator_files, load_generator, save_generator
from generators.stylegan2 import StyleGAN2
from genprior.errors import ConfigError


def tiny_stylegan2(upsample="transposed"):
    torch.manual_seed(0)
    g = StyleGAN2(32, 3, 4, z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16, upsample=upsample)
    with torch.no_grad():  # non-trivial noise strengths and biases, so the stored buffers matter
        for p in g.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return g.eval()


def tiny_dcgan():
    torch.manual_seed(0)
    g = DCGAN(28, 1, 4, z_dim=8, embed_dim=4, channel_base=64, channel_max=16)
    g(torch.randn(16, 8), torch.arange(16) % 4)  # train-mode forward: BatchNorm statistics move
    return g.eval()


@pytest.mark.parametrize("make", [tiny_stylegan2, lambda: tiny_stylegan2("bilinear"), tiny_dcgan])
def test_round_trip_is_bit_identical(tmp_path, make):
    g = make()
    save_generator(g, tmp_path / "gen", {"steps": 3})
    y = torch.tensor([0, 1, 2, 3])
    z = g.sample_latents(y, "z", torch.Generator().manual_seed(0))
    for name in ("gen", "gen.safetensors", "gen.json"):
        h = load_generator(tmp_path / name)
        assert type(h) is type(g) and h.config == g.config and h.info == {"steps": 3}
        assert not h.training and not any(p.requires_grad for p in h.parameters())
        assert torch.equal(h.decode(z, y), g.decode(z, y))
    doc = json.loads((tmp_path / "gen.json").read_text())
    assert doc["arch"] == g.arch and doc["params"] == g.num_params()


def test_missing(tmp_path):
    with pytest.raises(ConfigError, match="generator not found.*nothing.safetensors.*gan_face_generate"):
        load_generator(tmp_path / "nothing")
    save_generator(tiny_dcgan(), tmp_path / "half")
    (tmp_path / "half.json").unlink()
    with pytest.raises(ConfigError, match="half.json missing"):
        load_generator(tmp_path / "half")


def test_corrupt_files(tmp_path):
    g = tiny_dcgan()
    save_generator(g, tmp_path / "gen")
    weights, config = generator_files(tmp_path / "gen")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ConfigError, match="not a readable safetensors file"):
        load_generator(tmp_path / "gen")
    save_generator(g, tmp_path / "gen")
    config.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable generator config"):
        load_generator(tmp_path / "gen")
    config.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="needs 'arch'"):
        load_generator(tmp_path / "gen")


def test_unknown_arch_lists_valid_ones(tmp_path):
    save_generator(tiny_dcgan(), tmp_path / "gen")
    _, config = generator_files(tmp_path / "gen")
    doc = json.loads(config.read_text())
    config.write_text(json.dumps({**doc, "arch": "biggan"}))
    with pytest.raises(ConfigError, match="unknown generator architecture 'biggan'; valid: stylegan2, dcgan"):
        load_generator(tmp_path / "gen")
    with pytest.raises(ConfigError, match="valid options:.*channel_base"):
        build_generator("dcgan", chanel_base=3)
    assert set(GENERATORS) == {"stylegan2", "dcgan"}


def test_weights_that_do_not_fit_the_config(tmp_path):
    save_generator(tiny_dcgan(), tmp_path / "gen")
    _, config = generator_files(tmp_path / "gen")
    doc = json.loads(config.read_text())
    doc["kwargs"]["z_dim"] = 9
    config.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="does not fit the dcgan"):
        load_generator(tmp_path / "gen")
