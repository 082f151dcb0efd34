"""The diffusion synset: z_T latents through the sampler, the chunked path, the cached Minimax fine-tune."""
import pytest
import torch

from generators.diffusion import load_diffusion, save_diffusion
from genprior.context import DatasetOptions, RunContext
from genprior.errors import ConfigError
from genprior.synsets.diffusion import DiffusionSynset, minimax_model
from tests.toys import check_chunked_gradient, image_split


def split(num_classes=3, per_class=4, resolution=8):
    return image_split(num_classes, resolution, 1, per_class)


@pytest.fixture(autouse=True)
def toy_dataset(monkeypatch):
    from genprior import data

    monkeypatch.setitem(data.DATASETS, "toy", split().info)


def unet_folder(tmp_path, num_classes=3):
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=num_classes + 1)
    sched = DDIMScheduler(clip_sample=False, timestep_spacing="trailing", prediction_type="v_prediction")
    return save_diffusion(unet, sched, tmp_path / "unet", num_classes, num_classes, {"command": "test"})


def synset(tmp_path, ipc=2, **kw):
    return DiffusionSynset(split(), ipc, load_diffusion(unet_folder(tmp_path), steps=2, **kw), data_space="unit")


def test_chunked_latent_gradient_equals_plain_autograd(tmp_path):
    s = synset(tmp_path, guidance=2.0)
    assert set(check_chunked_gradient(s, chunk=4)) == {"latents"}


def test_the_start_is_plain_sampling_of_seeded_noise_and_storage_is_one_image_each(tmp_path):
    s = synset(tmp_path)
    g = s.generator
    z = g.sample_latents(s.labels, "z", __import__("genprior.rng").rng.seeded(0, 0xD1F))
    assert torch.equal(s.latents, z)
    torch.testing.assert_close(s.render_all(), (g.decode(z, s.labels) + 1) / 2)  # unit space: the sample itself
    assert s.storage()["floats"] == len(s) * 64 and "z_T" in s.storage()["counted"]
    assert [n for n, _ in s.named_parameters()] == ["latents"]  # the frozen model is not the set's state
    assert not torch.equal(synset(tmp_path).latents, DiffusionSynset(split(), 2, g, seed=1, data_space="unit").latents)


def test_a_model_that_does_not_fit_is_one_line(tmp_path):
    g = load_diffusion(unet_folder(tmp_path, num_classes=4))
    with pytest.raises(ConfigError, match="has 4 classes; toy has 3"):
        DiffusionSynset(split(), 1, g)
    with pytest.raises(ConfigError, match="makes 1x8x8 images; toy is 1x16x16"):
        DiffusionSynset(split(resolution=16), 1, load_diffusion(unet_folder(tmp_path / "b")))


def context(tmp_path):
    real = split(per_class=8)
    return RunContext(real, 1, 0, DatasetOptions("toy", None, None, "normalized"), cache_dir=tmp_path / "cache")


def test_the_minimax_fine_tune_is_cached_and_reused(tmp_path, monkeypatch):
    from generators import minimax
    from generators.minimax import MinimaxSpec

    calls = []
    real_finetune = minimax.minimax_finetune

    def counted(*a, **kw):
        calls.append(1)
        return real_finetune(*a, **kw)

    monkeypatch.setattr(minimax, "minimax_finetune", counted)
    base, ctx = unet_folder(tmp_path), context(tmp_path)
    spec = MinimaxSpec(steps=3, batch=6)
    first, built = minimax_model(base, spec, ctx)
    assert built and calls == [1] and (first / "unet").is_dir()
    assert minimax_model(base, spec, ctx) == (first, False) and calls == [1]  # reused, not fine-tuned again
    assert minimax_model(base, MinimaxSpec(steps=4, batch=6), ctx)[0] != first and calls == [1, 1]  # another spec
    tuned = load_diffusion(first)
    assert tuned.info["minimax"]["spec"]["steps"] == 3 and tuned.null_label == 3


def test_the_fine_tune_sees_the_data_pixels_whatever_space_the_run_distills_in(tmp_path, monkeypatch):
    from generators import minimax
    from generators.minimax import MinimaxSpec

    seen, real_finetune = [], minimax.minimax_finetune

    def recorded(unet, alphas, prediction, images, *rest, **kw):
        seen.append(images)
        return real_finetune(unet, alphas, prediction, images, *rest, **kw)

    monkeypatch.setattr(minimax, "minimax_finetune", recorded)
    normalized = split(per_class=8)
    unit = normalized.images * 0.25 + 0.5  # the toy data set's mean 0.5, std 0.25
    spaces = {"normalized": normalized.images, "unit": unit}
    for space, images in spaces.items():
        real = type(normalized)(images, normalized.labels, normalized.info, "train")
        ctx = RunContext(real, 1, 0, DatasetOptions("toy", None, None, space), cache_dir=tmp_path / space)
        minimax_model(unet_folder(tmp_path), MinimaxSpec(steps=1, batch=6), ctx)
    expected = unit.clamp(0, 1) * 2 - 1
    assert len(seen) == 2 and all(torch.allclose(images, expected, atol=1e-6) for images in seen)


def test_a_hub_id_is_keyed_by_the_files_it_resolves_to(tmp_path, monkeypatch):
    from generators import diffusion
    from generators.minimax import MinimaxSpec

    folders = {"org/a": unet_folder(tmp_path / "a"), "org/b": unet_folder(tmp_path / "b", num_classes=3)}
    with torch.no_grad():  # b: other weights under the same layout
        g = load_diffusion(folders["org/b"])
        for p in g.denoiser.unet.parameters():
            p.add_(0.01)
        save_diffusion(g.denoiser.unet, g.scheduler, folders["org/b"], 3, 3, {})
    local = diffusion.local_folder
    monkeypatch.setattr(diffusion, "local_folder", lambda path: local(folders.get(str(path), path)))
    ctx, spec = context(tmp_path), MinimaxSpec(steps=1, batch=6)
    assert minimax_model("org/a", spec, ctx)[0] != minimax_model("org/b", spec, ctx)[0]
    from genprior import artifacts

    with pytest.raises(ConfigError, match="org/a is not a folder"):
        artifacts.files_digest("org/a")


def test_the_prior_digest_covers_the_sampler_schedule(tmp_path):
    """Latents never resume against the same weights under another noise schedule or spacing."""
    import json

    from genprior.artifacts import module_digest

    folder = unet_folder(tmp_path)
    before = module_digest(load_diffusion(folder))
    assert module_digest(load_diffusion(folder)) == before  # the same files: the same prior
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), timestep_spacing="leading")))
    after = load_diffusion(folder)
    assert module_digest(after) != before and DiffusionSynset(split(), 1, after).prior_digest == module_digest(after)


def test_finetune_can_train_the_class_embedding_alone(tmp_path):
    s = DiffusionSynset(split(), 2, load_diffusion(unet_folder(tmp_path), steps=2), finetune=["class_embedding"],
                        data_space="unit")
    table = s.generator.denoiser.unet.class_embedding.weight
    assert s.groups()["generator"] == [table] and set(s.state_dict()) == {"latents", "tuned.denoiser:unet:class_embedding:weight"}
    assert s.storage()["floats"] == s.latents.numel() + table.numel() and "class_embedding" in s.storage()["counted"]
    s.render(torch.arange(len(s))).square().sum().backward()
    assert table.grad.abs().sum() > 0 and s.latents.grad.abs().sum() > 0
    assert all(p.grad is None for p in s.generator.parameters() if p is not table)  # the rest stays frozen
    # the trained table comes back from the set's state (a checkpoint), into the generator itself
    state = {k: v.detach() + 1 for k, v in s.state_dict().items()}
    s.load_state_dict(state)
    assert torch.equal(s.generator.denoiser.unet.class_embedding.weight, state["tuned.denoiser:unet:class_embedding:weight"])
    s.double()  # moved, the set's tuned weights are still the generator's own
    assert s.tuned["denoiser:unet:class_embedding:weight"] is s.generator.denoiser.unet.class_embedding.weight
    assert s.generator.denoiser.unet.class_embedding.weight.dtype == torch.float64
    g = load_diffusion(unet_folder(tmp_path / "b"), steps=2)
    with pytest.raises(ConfigError, match="'class_embeding' is in no parameter name of the generator"):
        DiffusionSynset(split(), 2, g, finetune=["class_embeding"])
    with pytest.raises(ConfigError, match="an empty name part would match every parameter"):
        DiffusionSynset(split(), 2, g, finetune=[""])
