"""Diffusion generators: the hand-written sampler against diffusers', gradients to z_T, loading
every folder kind, and one-line errors."""
import json

import pytest
import torch

from generators.diffusion import DiffusionGenerator, PixelUNet, load_diffusion, save_diffusion
from genprior.errors import ConfigError


def tiny_unet(num_class_embeds=None, size=8):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=size, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=num_class_embeds).eval()


def scheduler(**kw):
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, clip_sample=False, **kw)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("extra", [{}, {"set_alpha_to_one": False, "steps_offset": 1}], ids=["plain", "sd-style"])
def test_ddim_loop_equals_diffusers_pipeline_for_the_same_noise(spacing, prediction, extra):
    from diffusers import DDIMPipeline

    unet, sched = tiny_unet(), scheduler(timestep_spacing=spacing, prediction_type=prediction, **extra)
    pipe = DDIMPipeline(unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(batch_size=3, generator=torch.Generator().manual_seed(3), num_inference_steps=7,
                  output_type="np").images
    g = DiffusionGenerator(PixelUNet(unet), scheduler(timestep_spacing=spacing, prediction_type=prediction, **extra),
                           num_classes=0, steps=7)
    z = torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    decoded = g.decode(z).detach()
    ours = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert abs(ours - theirs).max() < 1e-5  # the pipeline's noise convention and output
    # the pipeline clamps to [0, 1], and an untrained epsilon model's samples lie far outside it:
    # the unclamped values, against diffusers' own DDIM step
    sched.set_timesteps(7)
    x = z.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
    assert (decoded - x).abs().max() <= 1e-5 * x.abs().max() + 1e-6


def conditional(**kw):
    return DiffusionGenerator(PixelUNet(tiny_unet(num_class_embeds=4)), scheduler(timestep_spacing="trailing"),
                              num_classes=3, null_label=3, **kw)


def test_sampling_is_deterministic_for_a_seed_and_classes_matter():
    g = conditional(steps=4)
    z = g.sample_latents(torch.arange(3), "z", torch.Generator().manual_seed(0))
    assert torch.equal(z, g.sample_latents(torch.arange(3), "z", torch.Generator().manual_seed(0)))
    x = g.decode(z, torch.arange(3))
    assert torch.equal(x, g.decode(z, torch.arange(3)))
    assert not torch.allclose(x, g.decode(z, torch.tensor([1, 2, 0])))


@pytest.mark.parametrize("guidance, skip", [(1.0, 0.0), (2.0, 0.0), (1.0, 0.5)])
def test_gradients_reach_z_and_checkpointing_changes_nothing(guidance, skip):
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    grads = []
    for ckpt in (False, True):
        g = conditional(steps=3, guidance=guidance, grad_checkpoint=ckpt, skip=skip)
        zz = z.clone().requires_grad_(True)
        (g.decode(zz, torch.arange(3)) * weights).sum().backward()
        grads.append(zz.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_guidance_mixes_class_and_null_predictions():
    g1, g3 = conditional(steps=1), conditional(steps=1, guidance=3.0)
    z, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 1])
    # one step from t: x0 is linear in the prediction, so guided = null + 3 (class - null)
    pred = lambda labels: g1.denoiser(z, torch.full((2,), g1.timesteps[0]), labels)  # noqa: E731
    guided = pred(torch.tensor([3, 3])) + 3 * (pred(y) - pred(torch.tensor([3, 3])))
    a = g1.alphas_cumprod[g1.timesteps[0]]
    x0 = (z - (1 - a).sqrt() * guided) / a.sqrt()
    torch.testing.assert_close(g3.decode(z, y), x0, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(g1.decode(z, y), x0, rtol=1e-3, atol=1e-3)  # guidance did change the result


# ---------------------------------------------------------------- folders

def _write_index(root, **components):
    (root / "model_index.json").write_text(json.dumps({"_class_name": "X", **components}))


def pixel_folder(tmp_path):
    root = tmp_path / "pixel"
    save_diffusion(tiny_unet(num_class_embeds=4), scheduler(), root, num_classes=3, null_label=3,
                   info={"command": "test"})
    return root


def dit_folder(tmp_path):
    from diffusers import AutoencoderKL, DiTTransformer2DModel

    root = tmp_path / "dit"
    torch.manual_seed(0)
    DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=1,
                          sample_size=4, patch_size=2, num_embeds_ada_norm=5).save_pretrained(root / "transformer")
    AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4,
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  sample_size=8).save_pretrained(root / "vae")
    scheduler().save_pretrained(root / "scheduler")
    _write_index(root, transformer=["diffusers", "DiTTransformer2DModel"], vae=["diffusers", "AutoencoderKL"],
                 scheduler=["diffusers", "DDIMScheduler"])
    return root


def sd_folder(tmp_path):
    from diffusers import UNet2DConditionModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    root = tmp_path / "sd"
    words = ["[PAD]", "[UNK]", "a", "photo", "of", "cat", "dog", "bird"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                            model_max_length=8).save_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    CLIPTextModel(CLIPTextConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=8)).save_pretrained(root / "text_encoder")
    UNet2DConditionModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, norm_num_groups=4,
                         attention_head_dim=4).save_pretrained(root / "unet")
    scheduler().save_pretrained(root / "scheduler")
    _write_index(root, unet=["diffusers", "UNet2DConditionModel"], text_encoder=["transformers", "CLIPTextModel"],
                 tokenizer=["transformers", "PreTrainedTokenizerFast"], scheduler=["diffusers", "DDIMScheduler"])
    return root


@pytest.mark.parametrize("make, kwargs, shape", [
    (pixel_folder, {}, (1, 8, 8)),
    (dit_folder, {"class_map": [4, 0, 2]}, (3, 8, 8)),
    (sd_folder, {"class_names": ["cat", "dog", "bird"]}, (1, 8, 8)),
])
def test_every_folder_kind_loads_frozen_and_decodes_with_gradients(make, kwargs, shape, tmp_path):
    g = load_diffusion(make(tmp_path), steps=2, guidance=2.0, **kwargs)
    assert g.num_classes == 3 and (g.channels, g.resolution, g.resolution) == shape
    assert not any(p.requires_grad for p in g.parameters()) and not g.training
    z = g.sample_latents(torch.arange(3), "z", torch.Generator().manual_seed(0)).requires_grad_(True)
    x = g.decode(z, torch.arange(3))
    assert x.shape == (3, *shape) and torch.isfinite(x).all()
    x.square().sum().backward()
    assert z.grad.abs().sum() > 0


def test_the_projects_folder_keeps_its_info(tmp_path):
    g = load_diffusion(pixel_folder(tmp_path))
    assert g.info == {"command": "test"} and g.null_label == 3


@pytest.mark.parametrize("make, match", [
    (lambda p: load_diffusion("someone/some-model"), "hub id and HF_HUB_OFFLINE is set.*pass the folder"),
    (lambda p: load_diffusion(p / "nowhere"), "diffusion model folder not found"),
    (lambda p: (pixel_folder(p) / "unet" / "diffusion_pytorch_model.safetensors").unlink()
     or load_diffusion(p / "pixel"), "UNet2DModel does not load"),
    (lambda p: (pixel_folder(p) / "model_index.json").unlink() or load_diffusion(p / "pixel"), "no model_index.json"),
    (lambda p: load_diffusion(pixel_folder(p), steps=1001), "sampling steps must be in 1..1000"),
    (lambda p: DiffusionGenerator(PixelUNet(tiny_unet(4)), scheduler(), 4, None, guidance=2.0), "needs a null class"),
    (lambda p: load_diffusion(dit_folder(p)), "map the data set's classes"),
    (lambda p: load_diffusion(dit_folder(p), class_map=[0, 5]), "reaches class 5"),
    (lambda p: load_diffusion(sd_folder(p)), "class names as prompts"),
])
def test_bad_input_is_one_line(make, match, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=match) as e:
        make(tmp_path)
    assert "\n" not in str(e.value)


def test_a_missing_folder_inside_a_local_one_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    from generators.diffusion import local_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match="diffusion model folder not found: runs/my_unet"):
        local_folder("runs/my_unet")  # as README's training example names it, before training wrote it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="is a hub id and HF_HUB_OFFLINE is set"):
        local_folder("someone/fashion-unet")
