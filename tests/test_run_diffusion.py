"""The diffusion and Minimax presets end to end on real FashionMNIST, with a tiny UNet folder."""
import json

import pytest
import torch

from generators.diffusion import save_diffusion
from genprior import config, run
from genprior.setfile import load_set
from tests.conftest import needs_fashion_mnist

pytestmark = needs_fashion_mnist
TINY = ["ipc=1", "synset.steps=2", "synset.minimax.steps=3", "synset.minimax.batch=8", "objective.batch_real=16",
        "objective.net_kwargs={width:16,depth:3}", "protocol.runs=1", "protocol.epochs=2", "protocol.models=[mlp]",
        "eval.baselines=false"]


def unet_folder(path, num_class_embeds=11, size=28, channels=1, null_label=10):
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, num_class_embeds=num_class_embeds)
    sched = DDIMScheduler(clip_sample=False, timestep_spacing="trailing", prediction_type="v_prediction")
    return save_diffusion(unet, sched, path, 10 if num_class_embeds else 0, null_label, {"command": "test"})


def _json(path, **changes):
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **changes)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return unet_folder(tmp_path_factory.mktemp("models") / "tiny")


def test_minimax_sample_then_dm_reuses_the_fine_tune(tiny, tmp_path):
    out = tmp_path / "sample"
    assert run.main(["minimax=sample", f"synset.generator={tiny}", *TINY, f"run_dir={out}"]) == 0
    s = load_set(out / "synset.safetensors")
    assert s.images.shape == (10, 1, 28, 28) and torch.isfinite(s.images).all()
    assert (out / "grid.png").stat().st_size > 0 and "synthetic" in json.loads((out / "metrics.json").read_text())
    assert "starting step 0/0" in (out / "log.txt").read_text()
    assert "Minimax fine-tune built in" in (out / "log.txt").read_text()
    dm = tmp_path / "dm"
    assert run.main(["minimax=dm", f"synset.generator={tiny}", *TINY, "iterations=2", f"run_dir={dm}"]) == 0
    assert "Minimax fine-tune cached" in (dm / "log.txt").read_text()  # the second run reused it
    moved = load_set(dm / "synset.safetensors").images
    assert not torch.allclose(moved, s.images)  # DM refined the sampled set


def test_presets_never_share_a_default_run_directory():
    dirs = {p: config.default_run_dir(config.compose([p])) for p in
            ("minimax=dm", "diffusion=dm", "minimax=sample", "diffusion=sample", "pixel=dm", "glad=dm")}
    assert len(set(dirs.values())) == len(dirs)
    assert dirs["pixel=dm"].name == "pixel-dm-ipc10-seed0" and dirs["glad=dm"].name == "gan-dm-ipc10-seed0"


@pytest.mark.parametrize("make, args, message", [
    (None, ["synset.generator=someone/fashion-unet"], "is a hub id and HF_HUB_OFFLINE is set"),
    (lambda p: (unet_folder(p) / "scheduler" / "scheduler_config.json").unlink(), [], "DDIMScheduler does not load"),
    (lambda p: unet_folder(p, num_class_embeds=None, null_label=None), [], "unconditional"),
    (lambda p: unet_folder(p, null_label=None), ["synset.guidance=2.0"], "needs a null class"),
    (lambda p: unet_folder(p, size=32), [], "makes 1x32x32 images; fashion_mnist is 1x28x28"),
    (lambda p: unet_folder(p, channels=3), [], "makes 3x28x28 images"),
    (lambda p: unet_folder(p), ["synset.steps=1001"], "sampling steps must be in 1..1000"),
    (lambda p: unet_folder(p), ["synset.minimax.lambda_pos=-1"], "synset.minimax.lambda_pos must be a number >= 0"),
    (lambda p: (unet_folder(p) / "genprior.json").unlink(), [], "11 class embeddings for 10 classes; if the last is "
                                                                "the null class, write"),
    (lambda p: unet_folder(p, null_label=11), [], "null_label must be null or an integer in 10..10"),
    (lambda p: _json(unet_folder(p) / "unet" / "config.json", sample_size=None), [], "has no sample_size"),
    # Minimax checks the model before fine-tuning it (the fine-tune would fail, or take minutes for nothing)
    (lambda p: unet_folder(p, channels=3), ["minimax"], "makes 3x28x28 images"),
    (lambda p: unet_folder(p, size=32), ["minimax"], "makes 1x32x32 images; fashion_mnist is 1x28x28"),
    (lambda p: unet_folder(p, num_class_embeds=None, null_label=None), ["minimax"], "unconditional"),
    (lambda p: unet_folder(p, null_label=None), ["minimax"], "has no null class: Minimax keeps classifier-free"),
    (lambda p: (unet_folder(p) / "genprior.json").unlink(), ["minimax"], "11 class embeddings for 10 classes"),
])
def test_bad_input_is_one_line_and_writes_nothing(make, args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache"))  # its own: no fine-tune may start
    model = tmp_path / "model"
    if make:
        make(model)
    out = tmp_path / "run"
    minimax = "minimax" in " ".join(args)
    args = [a for a in args if a != "minimax"]  # (the preset, not an override)
    tiny = TINY if minimax else [a for a in TINY if not a.startswith("synset.minimax")]
    args = [*args, f"synset.generator={model}"] if "synset.generator" not in " ".join(args) else args
    assert run.main(["minimax=sample" if minimax else "diffusion=sample", *tiny, *args, f"run_dir={out}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not out.exists() and not (tmp_path / "cache" / "minimax").exists()
