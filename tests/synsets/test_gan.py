import pytest
import torch

from generators.base import frozen
from generators.dcgan import DCGAN
from generators.stylegan2 import StyleGAN2
from genprior.errors import ConfigError
from genprior.rng import seeded
from genprior.synsets.gan import GanSynset
from tests.toys import check_chunked_gradient, image_split

TINY_SG2 = dict(z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16)


def split(num_classes=3, resolution=28, channels=1, per_class=4):
    return image_split(num_classes, resolution, channels, per_class)


def stylegan2(num_classes=3, resolution=28, channels=1):
    torch.manual_seed(0)
    return frozen(StyleGAN2(resolution, channels, num_classes, **TINY_SG2))


def synset(space, ipc=2, **kw):
    layer = 1 if space == "f" else None
    return GanSynset(split(), ipc, stylegan2(), space=space, layer=layer, data_space="unit", **kw)


def _patch_toy_dataset(monkeypatch):
    # from_unit looks the data set up by name; the toy one is registered for the test only
    from genprior import data

    monkeypatch.setitem(data.DATASETS, "toy", split().info)


@pytest.mark.parametrize("space", ["z", "w", "w+", "f"])
def test_chunked_latent_gradient_equals_plain_autograd(space, monkeypatch):
    _patch_toy_dataset(monkeypatch)
    s = synset(space)
    check_chunked_gradient(s, chunk=4)
    assert {n for n, _ in s.named_parameters()} == {n for n, p in s.named_parameters() if p.grad is not None}


def test_latents_not_the_generator_are_the_set(monkeypatch):
    _patch_toy_dataset(monkeypatch)
    s = synset("w+", ipc=2)
    assert set(s.state_dict()) == {"latents"} and s.latents.shape == (6, s.generator.num_ws, 16)
    st = s.storage()
    assert st["floats"] == s.latents.numel() and "generator" in st["not_counted"]
    assert st["generator_params"] == s.generator.num_params()
    f = synset("f")
    assert set(f.state_dict()) == {"f", "ws"} and set(f.groups()) == {"f", "w"}
    first = f.generator.f_first_row(f.layer)  # the w+ rows before it shaped F_n and are not read again
    assert f.storage()["floats"] == f.f.numel() + f.ws[:, first:].numel() < f.f.numel() + f.ws.numel()
    with torch.no_grad():
        before = f.decode(torch.arange(len(f)))
        f.ws[:, :first] += 1
        assert torch.equal(f.decode(torch.arange(len(f))), before)
        f.ws[:, first] += 1
        assert not torch.equal(f.decode(torch.arange(len(f))), before)
    tuned = synset("w", finetune=True)
    assert any(k.startswith("tuned.") for k in tuned.state_dict()) and "generator" in tuned.groups()
    assert tuned.storage()["floats"] == tuned.latents.numel() + tuned.generator.num_params()


def test_images_are_in_the_data_space_and_differ_within_a_class(monkeypatch):
    _patch_toy_dataset(monkeypatch)
    info = split().info
    s = GanSynset(split(), 2, stylegan2(), space="w+", data_space="normalized")
    x = s.render_all()
    g = s.generator
    raw = g.decode(s.latents, s.labels, "w+")
    torch.testing.assert_close(x, ((raw + 1) / 2 - info.mean[0]) / info.std[0])
    assert (x[0] - x[1]).abs().max() > 1e-3  # truncation 0.7 keeps items of a class apart
    s.to(torch.float64)  # the unregistered, frozen generator moves with the synset
    assert next(s.generator.parameters()).dtype == torch.float64 and s.latents.dtype == torch.float64


def test_same_seed_same_latents(monkeypatch):
    _patch_toy_dataset(monkeypatch)
    assert torch.equal(synset("w", seed=3).latents, synset("w", seed=3).latents)
    assert not torch.equal(synset("w", seed=3).latents, synset("w", seed=4).latents)


@pytest.mark.parametrize("make, match", [
    (lambda: GanSynset(split(), 1, frozen(DCGAN(28, 1, 3, z_dim=8, embed_dim=4, channel_base=64, channel_max=16)),
                       space="f", layer=1), "no latent kind 'w\\+'"),
    (lambda: GanSynset(split(), 1, stylegan2(), space="f", layer=7), "out of range; valid: 1..2"),
    (lambda: GanSynset(split(), 1, stylegan2(), space="f"), "needs layer=n"),
    (lambda: GanSynset(split(), 1, stylegan2(), space="w", layer=1), "applies to latent space f only"),
    (lambda: GanSynset(split(), 1, stylegan2(), space="x"), "valid: z, w, w\\+, f"),
    (lambda: GanSynset(split(resolution=32), 1, stylegan2()), "makes 1x28x28 images; toy is 1x32x32"),
    (lambda: GanSynset(split(channels=3), 1, stylegan2()), "1x28x28 images; toy is 3x28x28"),
    (lambda: GanSynset(split(num_classes=4), 1, stylegan2()), "has 3 classes; toy has 4"),
    (lambda: GanSynset(split(), 1, stylegan2(num_classes=0)), "unconditional"),
    (lambda: GanSynset(split(), 2, stylegan2(), truncation=0), "same latent"),
])
def test_bad_input_is_one_line(make, match):
    with pytest.raises(ConfigError, match=match) as e:
        make()
    assert "\n" not in str(e.value)


def test_the_prior_digest_covers_the_noise_mode_and_keeps_the_shipped_ones():
    from genprior.artifacts import module_digest, tensor_digest

    g = stylegan2()
    assert module_digest(g) == tensor_digest(*g.state_dict().values())  # "const": the digest is the state's
    g.noise_mode = "none"  # what editing the generator's JSON does: other images, the same tensors
    assert module_digest(g) != tensor_digest(*g.state_dict().values())


@pytest.mark.parametrize("space", ["w+", "f"])
def test_a_class_map_renders_each_data_set_class_as_its_generator_class(space, monkeypatch):
    """GLaD's ImageNet-subset setting: a generator of more classes, each data-set class mapped to one."""
    _patch_toy_dataset(monkeypatch)
    g = stylegan2(num_classes=5)
    layer = 1 if space == "f" else None
    mapped = GanSynset(split(), 2, g, space=space, layer=layer, data_space="unit", class_map=[4, 0, 2])
    assert mapped.generator_labels.tolist() == [4, 4, 0, 0, 2, 2] and mapped.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # each item starts at its generator class's latents, as a set of those classes would
    ws = g.sample_latents(torch.tensor([4, 4, 0, 0, 2, 2]), "w+", seeded(0, 0x6A4), truncation=0.7)
    start = g.to_f(ws, 1, torch.tensor([4, 4, 0, 0, 2, 2])) if space == "f" else ws
    torch.testing.assert_close(mapped.f if space == "f" else mapped.latents, start)
    check_chunked_gradient(mapped, chunk=4)
    with pytest.raises(ConfigError, match="synset.class_map"):  # unmapped, the class counts must agree
        GanSynset(split(), 2, g, space=space, layer=layer, data_space="unit")
    with pytest.raises(ConfigError, match=r"class_map has 2 entries; toy has 3 classes"):
        GanSynset(split(), 2, g, space=space, layer=layer, data_space="unit", class_map=[4, 0])
    with pytest.raises(ConfigError, match=r"class_map must name classes 0..4 of the stylegan2 generator"):
        GanSynset(split(), 2, g, space=space, layer=layer, data_space="unit", class_map=[4, 0, 5])
