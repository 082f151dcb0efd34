"""End-to-end GLaD runs (glad=dc|dm|mtt) with a tiny generator, and their bad input."""
import json

import pytest
import torch
from safetensors.torch import load_file

from generators.dcgan import DCGAN
from generators.io import save_generator
from generators.stylegan2 import StyleGAN2
from genprior import run
from genprior.setfile import load_set
from tests.conftest import needs_fashion_mnist
from tests.runs import run_two_processes
from tests.test_run import TINY, TINY_MTT, TINY_REAL

pytestmark = needs_fashion_mnist


@pytest.fixture(scope="module")
def generators_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("generators")
    torch.manual_seed(0)
    save_generator(StyleGAN2(28, 1, 10, z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16),
                   d / "sg2")
    save_generator(DCGAN(28, 1, 10, z_dim=8, embed_dim=4, channel_base=64, channel_max=16).eval(), d / "dcgan")
    save_generator(StyleGAN2(32, 1, 10, z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16),
                   d / "sg2_32px")
    (d / "corrupt.json").write_text((d / "sg2.json").read_text())
    (d / "corrupt.safetensors").write_bytes(b"\0" * 100)
    return d


@pytest.mark.parametrize("preset, space", [("dc", "w+"), ("dm", "f"), ("mtt", "w")])
def test_each_glad_preset_writes_every_output_and_they_load(preset, space, generators_dir, tmp_path):
    out = tmp_path / "run"
    extra = TINY_MTT + [f"objective.experts.dir={tmp_path / 'experts'}"] if preset == "mtt" else TINY_REAL
    layer = ["synset.layer=1"] if space == "f" else []
    args = [f"glad={preset}", *TINY, *extra, f"synset.generator={generators_dir / 'sg2'}", f"synset.space={space}",
            *layer, f"run_dir={out}", "chunk=4"]
    assert run.main(args) == 0
    s = load_set(out / "synset.safetensors")
    assert s.images.shape == (10, 1, 28, 28) and torch.isfinite(s.images).all()
    latents = load_file(str(out / "latents.safetensors"))
    assert set(latents) - {"lr"} == ({"f", "ws"} if space == "f" else {"latents"})
    assert ("lr" in latents) == (preset == "mtt")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["storage"]["counted"].startswith("latents (F_" if space == "f" else f"latents ({space})")
    assert "generator" in metrics["storage"]["not_counted"]
    assert "gan" in (out / "config.yaml").read_text()
    from generators.io import open_generator
    from genprior.artifacts import tensor_digest

    g = open_generator(str(generators_dir / "sg2"))
    assert metrics["prior_digest"] == tensor_digest(*g.state_dict().values())  # which generator made the set


def test_glad_moves_the_latents_and_resumes(generators_dir, tmp_path):
    out = tmp_path / "run"
    args = ["glad=dm", "ipc=2", "iterations=4", "checkpoint_every=2", "objective.batch_real=16",
            "eval.enabled=false", f"synset.generator={generators_dir / 'sg2'}", "synset.optim.latents.lr=1.0",
            f"run_dir={out}"]
    assert run.main(args[:2] + ["iterations=2"] + args[3:]) == 0
    first = load_file(str(out / "latents.safetensors"))["latents"]
    assert run.main(args) == 0
    assert "resuming at step 2/4" in (out / "log.txt").read_text()
    resumed = load_file(str(out / "latents.safetensors"))["latents"]
    straight = tmp_path / "straight"
    assert run.main(args[:-1] + [f"run_dir={straight}"]) == 0
    assert torch.allclose(resumed, load_file(str(straight / "latents.safetensors"))["latents"], atol=1e-6)
    assert (resumed - first).abs().max() > 0


def test_a_set_does_not_resume_against_a_replaced_generator(generators_dir, tmp_path, capsys):
    import shutil

    from tests.test_run_safety import checksums

    gen = tmp_path / "gen"  # one path, as a config names the shipped generator; its file is then retrained
    for ext in (".json", ".safetensors"):
        shutil.copy(generators_dir / f"sg2{ext}", gen.with_suffix(ext))
    out = tmp_path / "run"
    args = ["glad=dm", "ipc=1", "iterations=2", "objective.batch_real=16", "eval.enabled=false",
            f"synset.generator={gen}", f"run_dir={out}"]
    assert run.main(args) == 0
    torch.manual_seed(1)
    save_generator(StyleGAN2(28, 1, 10, z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16), gen)
    before = checksums(out)
    capsys.readouterr()  # the first run's output
    assert run.main([*args, "iterations=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "distilled with another version of its generator" in err, err
    assert checksums(out) == before


def test_glad_from_inverted_real_images_starts_near_them_and_caches(generators_dir, tmp_path):
    args = ["glad=dm", "ipc=1", "iterations=2", "objective.batch_real=16", "eval.enabled=false",
            f"synset.generator={generators_dir / 'sg2'}", "synset.init=invert", "synset.invert.steps=10"]
    assert run.main(args + [f"run_dir={tmp_path / 'a'}"]) == 0
    log = (tmp_path / "a" / "log.txt").read_text()
    assert "latents inverted from 10 real images (built in" in log, log
    assert run.main(args + [f"run_dir={tmp_path / 'b'}"]) == 0
    assert "latents inverted from 10 real images (cached" in (tmp_path / "b" / "log.txt").read_text()
    assert torch.equal(load_file(str(tmp_path / "a" / "latents.safetensors"))["latents"],
                       load_file(str(tmp_path / "b" / "latents.safetensors"))["latents"])


def test_two_processes_share_the_inversion_and_equal_one(generators_dir, tmp_path, monkeypatch):
    args = ["glad=dm", "ipc=1", "iterations=0", "eval.enabled=false", f"synset.generator={generators_dir / 'sg2'}",
            "synset.init=invert", "synset.invert.steps=5", "synset.invert.batch=4"]  # 10 items: 3 batches
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache1"))
    assert run.main(args + [f"run_dir={tmp_path / 'one'}"]) == 0
    r = run_two_processes(args, tmp_path / "two", env={"GENPRIOR_CACHE": str(tmp_path / "cache2")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(built in" in (tmp_path / "two" / "log.txt").read_text()
    assert len(list((tmp_path / "cache2").rglob("batch_*.safetensors"))) == 3
    one, two = (load_file(str(tmp_path / d / "latents.safetensors"))["latents"] for d in ("one", "two"))
    # the children run on one thread, this process maybe on more: float rounding apart (as test_run.py's 2-process test)
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args, match", [
    (["synset.generator={d}/dcgan", "synset.space=f", "synset.layer=1"], "dcgan generator has no latent kind 'w+'"),
    (["synset.generator={d}/sg2", "synset.space=f", "synset.layer=5"], "F layer n=5 out of range; valid: 1..2"),
    (["synset.generator={d}/sg2_32px"], "makes 1x32x32 images; fashion_mnist is 1x28x28"),
    (["synset.generator={d}/missing"], "generator not found"),
    (["synset.generator={d}/corrupt"], "corrupt"),
    (["synset.generator=gan_face_generate"], "makes 3x64x64 images; fashion_mnist is 1x28x28"),
    (["synset.generator={d}/net.pkl"], "give synset.code_dir="),
    (["synset.generator={d}/net.pkl", "synset.code_dir={d}"], "refusing to load"),
    (["synset.generator={d}/sg2", "synset.init=inverted"], "synset.init must be one of sample, invert, got 'inverted'"),
    (["synset.generator={d}/dcgan", "synset.init=invert"], "dcgan generator has no latent kind 'w+'"),
    (["synset.generator={d}/sg2", "synset.init=invert", "synset.invert.steps=0"], "synset.invert.steps"),
    (["synset.generator={d}/sg2", "synset.init=invert", "+synset.invert.step=3"], "synset.invert"),
])
def test_bad_generator_input_is_one_line_exit_2(args, match, generators_dir, tmp_path, capsys):
    args = [a.format(d=generators_dir) for a in args]
    assert run.main(["glad=dm", "ipc=1", *args, f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err
    assert not (tmp_path / "r" / "config.yaml").exists()
