import json
import re

import pytest
import torch
from safetensors.torch import load_file

from generators.io import load_generator
from generators.layers import minibatch_std
from generators.train import TrainSpec, batch_indices, build, fid_of, main, train, train_spec
from genprior.data import DATASETS, Split, normalize
from genprior.errors import ConfigError
from tests.conftest import needs_fashion_mnist

TINY = {
    "stylegan2": ({"z_dim": 8, "w_dim": 16, "mapping_layers": 2, "channel_base": 64, "channel_max": 16},
                  {"channel_base": 64, "channel_max": 16, "cmap_dim": 8}),
    "dcgan": ({"z_dim": 8, "embed_dim": 4, "channel_base": 64, "channel_max": 16},
              {"channel_base": 64, "channel_max": 16}),
}


def toy_split(n=40):
    g = torch.Generator().manual_seed(0)
    info = DATASETS["fashion_mnist"]
    return Split(normalize(torch.rand(n, 1, 28, 28, generator=g), info), torch.arange(n) % 10, info, "train")


def spec(arch, steps, **kw):
    g, d = TINY[arch]
    return TrainSpec(arch=arch, steps=steps, batch=4, r1_every=2, generator_kwargs=g, discriminator_kwargs=d, **kw)


@pytest.mark.parametrize("arch", ["stylegan2", "dcgan"])
def test_resumed_run_equals_uninterrupted(tmp_path, arch, capsys):
    real = toy_split()
    train(spec(arch, 4), tmp_path / "a", tmp_path / "a.ckpt", real=real, log_every=2, checkpoint_every=2,
          progress=False)
    train(spec(arch, 2), tmp_path / "b", tmp_path / "b.ckpt", real=real, progress=False)  # "killed" at step 2
    train(spec(arch, 4), tmp_path / "b", tmp_path / "b.ckpt", real=real, progress=False)  # same command, longer
    assert "resuming" in capsys.readouterr().out
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = load_generator(tmp_path / "b")
    assert g.info["steps"] == 4 and g.info["images_seen"] == 16 and g.info["train"]["arch"] == arch
    assert (tmp_path / "b.png").stat().st_size > 0
    train(spec(arch, 0), tmp_path / "init", tmp_path / "init.ckpt", real=real, progress=False)
    init = load_file(str(tmp_path / "init.safetensors"))  # the EMA did move away from the initial weights
    assert any(not torch.equal(init[k], a[k]) for k in a if k.endswith("weight"))


def test_stylegan2_trains_the_shipped_recipe_by_default():
    """arch=stylegan2 alone trains bilinear upsampling with 2 mapping layers (assets/README.md),
    the user's generator_kwargs win key by key, and the identity records the kwargs used."""
    s = TrainSpec(arch="stylegan2").resolved()
    assert s.generator_kwargs == {"upsample": "bilinear", "mapping_layers": 2}
    assert s.identity()["generator_kwargs"] == s.generator_kwargs
    s = TrainSpec(arch="stylegan2", generator_kwargs={"upsample": "transposed", "z_dim": 32}).resolved()
    assert s.generator_kwargs == {"upsample": "transposed", "mapping_layers": 2, "z_dim": 32}
    G, _ = build(s, toy_split(10))
    assert G.config["upsample"] == "transposed" and G.config["mapping_layers"] == 2
    assert TrainSpec(arch="dcgan").resolved().generator_kwargs == {}


def test_class_groups_make_minibatch_std_groups_of_one_class():
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8] * 5)
    s = TrainSpec(batch=12, class_groups=4).resolved()
    idx = batch_indices(torch.Generator().manual_seed(0), s, labels)
    assert len(set(idx.tolist())) > 6  # distinct images, not one image repeated per group
    # minibatch_std groups image i with i + 3, i + 6, i + 9: tag each image with its class and
    # the std feature is zero exactly when every group is one class
    x = labels[idx].float().view(12, 1, 1, 1)
    assert minibatch_std(x, 4)[:, 1].max() < 1e-3  # sqrt(eps)
    free = batch_indices(torch.Generator().manual_seed(0), TrainSpec(batch=12, class_groups=1).resolved(), labels)
    assert minibatch_std(labels[free].float().view(12, 1, 1, 1), 4)[:, 1].max() > 0.1
    # the StyleGAN2 discriminator's mbstd group follows class_groups; DCGAN defaults to free labels
    _, D = build(TrainSpec(arch="stylegan2", class_groups=2, discriminator_kwargs=TINY["stylegan2"][1]).resolved(),
                 toy_split())
    assert D.mbstd_group == 2 and TrainSpec(arch="dcgan").resolved().class_groups == 1
    with pytest.raises(ConfigError, match="not a multiple of class_groups 4"):
        train(TrainSpec(arch="stylegan2", batch=6, steps=1, class_groups=4), "x", real=toy_split(), progress=False)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    real = toy_split()
    train(spec("dcgan", 1), tmp_path / "a", tmp_path / "ckpt", real=real, progress=False)
    with pytest.raises(ConfigError, match="another run.*seed: checkpoint 0, now 1"):
        train(spec("dcgan", 2, seed=1), tmp_path / "a", tmp_path / "ckpt", real=real, progress=False)
    with pytest.raises(ConfigError, match="holds step 1, past steps=0"):  # would be saved as a 0-step generator
        train(spec("dcgan", 0), tmp_path / "a", tmp_path / "ckpt", real=real, progress=False)
    torch.save({"step": 3, "config": {}}, tmp_path / "other")  # e.g. a distillation's checkpoint.pt
    with pytest.raises(ConfigError, match="not a generator training checkpoint"):
        train(spec("dcgan", 2), tmp_path / "a", tmp_path / "other", real=real, progress=False)


def test_fid_is_recorded_from_genprior_metrics(tmp_path, monkeypatch):
    import genprior.metrics

    seen = {}

    def image_metrics(unit, labels, dataset, split="test", **kw):
        seen.update(shape=tuple(unit.shape), lo=float(unit.min()), hi=float(unit.max()), split=split,
                    classes=sorted(set(labels.tolist())), device=kw.get("device"))
        return {"inception": {"overall": {"fid": 12.5, "kid": 0.01, "n": len(unit)}, "key": "k",
                              "per_class": {"0": {"fid": 20.0}}}}

    monkeypatch.setattr(genprior.metrics, "image_metrics", image_metrics)
    train(spec("dcgan", 1), tmp_path / "a", tmp_path / "ckpt", real=toy_split(), fid_images=20, progress=False)
    assert seen["shape"] == (20, 1, 28, 28) and 0 <= seen["lo"] <= seen["hi"] <= 1 and seen["split"] == "test"
    assert seen["classes"] == list(range(10))  # balanced over the classes
    assert seen["device"] == "cpu"  # named, not image_metrics' default: Inception runs where the training ran
    fid_of(load_generator(tmp_path / "a"), "fashion_mnist", 10, device="cuda:1")  # a GPU training's: on its GPU
    assert seen["device"] == "cuda:1"
    fid = json.loads((tmp_path / "a.json").read_text())["info"]["fid"]
    assert fid["fid"] == 12.5 and fid["kid"] == 0.01 and fid["n"] == 20 and fid["fid_per_class"] == {"0": 20.0}


def test_cli_errors(tmp_path, capsys):
    assert main(["arch=biggan", f"out={tmp_path / 'g'}"]) == 2
    assert "valid: stylegan2, dcgan" in capsys.readouterr().err
    assert main(["steps=2"]) == 2
    assert "out=PATH" in capsys.readouterr().err
    assert main(["stepz=2", f"out={tmp_path / 'g'}"]) == 2
    assert "unknown key stepz; valid: arch, batch" in capsys.readouterr().err
    assert main(["generator_kwargs=3", f"out={tmp_path / 'g'}"]) == 2
    assert "generator_kwargs must be a mapping, got 3" in capsys.readouterr().err
    assert main(["log_every=0", f"out={tmp_path / 'g'}"]) == 2  # would divide by zero after the first step
    assert "log_every must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["fid_images=many", f"out={tmp_path / 'g'}"]) == 2
    assert "fid_images must be an integer >= 0, got 'many'" in capsys.readouterr().err
    assert main(["lr=-1", f"out={tmp_path / 'g'}"]) == 2  # was Adam's traceback after the data loaded
    assert "lr must be a number > 0 (or null), got -1" in capsys.readouterr().err
    assert main(["betas=[0.5]", f"out={tmp_path / 'g'}"]) == 2
    assert "betas must be two numbers in [0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize("key,value,match", [
    ("seed", "-1", "seed must be an integer >= 0, got -1"),  # was numpy's SeedSequence traceback after the data loaded
    ("class_groups", "0", "class_groups must be an integer >= 1 (or null), got 0"),
    ("resolution", "4", "resolution must be an integer >= 8 (or null), got 4"),
])
def test_out_of_range_values_are_one_line_before_any_work(key, value, match, tmp_path, capsys):
    with pytest.raises(ConfigError, match=re.escape(match)) as e:
        train_spec({"arch": "dcgan", key: value})
    assert "\n" not in str(e.value)
    assert main(["arch=dcgan", f"{key}={value}", f"out={tmp_path / 'g'}"]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err


@needs_fashion_mnist
def test_cli_on_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.delenv("GENPRIOR_DATA")
    g, d = TINY["stylegan2"]
    argv = ["arch=stylegan2", "steps=1", "batch=4", f"generator_kwargs={json.dumps(g)}",
            f"discriminator_kwargs={json.dumps(d)}", f"out={tmp_path / 'fm'}", f"ckpt={tmp_path / 'fm.ckpt'}"]
    assert main(argv) == 0
    info = json.loads((tmp_path / "fm.json").read_text())["info"]
    assert info["command"].startswith("python -m generators.train arch=stylegan2") and info["steps"] == 1
    assert (tmp_path / "fm.png").is_file() and (tmp_path / "fm.ckpt").is_file()


TINY_UNET = dict(block_out_channels=[8, 16], norm_num_groups=4, down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                 up_block_types=["AttnUpBlock2D", "UpBlock2D"], attention_head_dim=8, layers_per_block=1)


def test_diffusion_model_resumes_to_the_same_weights_and_loads(tmp_path, capsys):
    from generators.diffusion import load_diffusion
    from generators.train_diffusion import DiffusionSpec

    real = toy_split()

    def spec(steps):
        return DiffusionSpec(steps=steps, batch=4, unet_kwargs=TINY_UNET, sample_steps=2)

    train(spec(4), tmp_path / "a", tmp_path / "a.ckpt", real=real, checkpoint_every=2, progress=False)
    train(spec(2), tmp_path / "b", tmp_path / "b.ckpt", real=real, progress=False)  # "killed" at step 2
    train(spec(4), tmp_path / "b", tmp_path / "b.ckpt", real=real, progress=False)
    assert "resuming" in capsys.readouterr().out
    a, b = (load_file(str(tmp_path / d / "unet" / "diffusion_pytorch_model.safetensors")) for d in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = load_diffusion(tmp_path / "b", steps=2)
    assert g.info["steps"] == 4 and g.info["train"]["arch"] == "unet" and g.null_label == 10
    assert (tmp_path / "b.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="another run"):  # another recipe on the same checkpoint
        train(DiffusionSpec(steps=6, batch=4, unet_kwargs=TINY_UNET, lr=1e-3), tmp_path / "b", tmp_path / "b.ckpt",
              real=real, progress=False)


def test_cli_picks_the_family_by_arch(capsys):
    assert main(["arch=unet", "r1_gamma=1", "out=x"]) == 2  # a GAN key is not a diffusion key
    assert "unknown key r1_gamma; valid: arch, batch, beta_schedule" in capsys.readouterr().err
    assert main(["arch=vae", "out=x"]) == 2
    assert "valid: stylegan2, dcgan, unet" in capsys.readouterr().err


class _Point(torch.nn.Module):
    """A generator whose every image is one learnable pixel value b (z is drawn, not used)."""
    z_dim = 2

    def __init__(self, b):
        super().__init__()
        self.b = torch.nn.Parameter(torch.tensor([b]))

    def decode(self, z, labels, space):
        return (self.b + 0 * z[:, :1]).view(-1, 1, 1, 1)


class _Slope(torch.nn.Module):
    """D(x) = a x on one-pixel images: dD/dx = a, so R1 = a^2 for every image."""

    def __init__(self, a):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([a]))

    def forward(self, x, labels):
        return self.a * x.flatten()


def test_gan_step_losses_and_lazy_r1_by_hand():
    """Real pixels 1, fake pixel b = -0.5, D slope a = 2; SGD at lr 1 so each update is minus the
    hand gradient. D: softplus(D(fake)) + softplus(-D(real)) + r1_every * gamma/2 * a^2 on R1 steps
    (0, 4, ...; none on step 1); G: softplus(-a' b) with D's updated slope a'."""
    import copy
    import math

    from generators.train import train_step

    sp, sig = (lambda v: math.log1p(math.exp(v))), (lambda v: 1 / (1 + math.exp(-v)))
    s = TrainSpec(arch="dcgan", batch=3, r1_gamma=0.1, r1_every=4, class_groups=1).resolved()
    real, labels = torch.ones(6, 1, 1, 1), torch.arange(6) % 2
    for step, r1_weight in ((0, 0.1 / 2 * 4), (1, 0.0)):
        a, b = 2.0, -0.5
        G, D = _Point(b), _Slope(a)
        opt_G, opt_D = (torch.optim.SGD(m.parameters(), lr=1.0) for m in (G, D))
        logs = train_step(step, s, G, D, copy.deepcopy(G), opt_G, opt_D, real, labels)
        assert logs["d"] == pytest.approx(sp(a * b) + sp(-a) + r1_weight * a * a, abs=1e-6)
        assert logs.get("r1") == (a * a if r1_weight else None)
        a_next = a - (sig(a * b) * b - sig(-a) * 1.0 + r1_weight * 2 * a)  # d loss_d / da
        assert D.a.item() == pytest.approx(a_next, abs=1e-6)
        assert logs["g"] == pytest.approx(sp(-a_next * b), abs=1e-6)
        assert G.b.item() == pytest.approx(b + sig(-a_next * b) * a_next, abs=1e-6)  # minus d softplus(-a'b)/db


@pytest.mark.parametrize("raised,code,says", [
    ("diverged", 1, "generators.train: diverged: D loss nan"),
    ("interrupt", 130, "stopped by SIGINT (exit 130); rerun the same command to resume"),
])
def test_a_diverged_or_interrupted_training_exits_1_or_130_with_one_line(raised, code, says, tmp_path, monkeypatch,
                                                                         capsys):
    import generators.train as gt
    from genprior.errors import Diverged

    def stop(*args, **kwargs):
        raise Diverged("D loss nan") if raised == "diverged" else KeyboardInterrupt

    monkeypatch.setattr(gt, "train", stop)
    assert main(["arch=dcgan", f"out={tmp_path / 'g'}"]) == code
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
