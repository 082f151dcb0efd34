"""Minimax fine-tuning: the banks, the two terms by hand, and only the DiffFit subset moving."""
import pytest
import torch

from generators.minimax import Banks, MinimaxSpec, cosine, minimax_finetune, minimax_terms
from genprior.errors import ConfigError


def test_banks_keep_the_newest_entries_oldest_out_first():
    b = Banks(64)
    for start in range(0, 100, 10):
        b.push(3, torch.arange(start, start + 10).float().view(10, 1))
    kept = b.get(3).flatten()
    assert len(kept) == 64 and kept.tolist() == list(range(36, 100))
    assert b.get(4) is None


def test_the_terms_by_hand():
    real, fake = Banks(8), Banks(8)
    x0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    classes = torch.tensor([0, 0, 1])
    pos, neg = minimax_terms(x0, classes, real, fake, 0.5, 0.25)
    assert pos == 0 and neg == 0  # a class's first appearance: empty banks, no terms
    real.push(0, torch.tensor([[1.0, 0.0]]))
    fake.push(0, torch.tensor([[1.0, 1.0]]))
    pos, neg = minimax_terms(x0, classes, real, fake, 0.5, 0.25)
    # class 0: cos(x0, real) = [1, 0] -> min 0; cos(x0, fake) = [0.707, 0.707] -> max 0.707; 2 classes present
    assert torch.isclose(pos, torch.tensor(0.5 * (1 - 0.0) / 2))
    assert torch.isclose(neg, torch.tensor(0.25 * 2 ** -0.5 / 2))
    assert torch.allclose(cosine(x0, x0).diagonal(), torch.ones(3))


def tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=4)


def test_only_the_difffit_subset_changes_and_the_input_model_stays():
    from diffusers import DDIMScheduler

    unet = tiny_unet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    images = torch.rand(12, 1, 8, 8) * 2 - 1
    tuned, logs = minimax_finetune(unet, DDIMScheduler().alphas_cumprod, "epsilon", images, torch.arange(12) % 3, 3,
                                   MinimaxSpec(steps=4, batch=6), progress=False)
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in before.items())  # a copy was tuned
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(("bias" in k or "norm" in k or "class_embedding" in k) for k in changed), changed
    assert any("conv" in k and k.endswith("weight") and "norm" not in k for k in before)  # there were others to keep
    assert logs["pos"] > 0 and logs["neg"] > 0  # the classes came back, so both terms were on


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_the_training_target_and_its_inverse_agree_for_every_parameterization(prediction):
    from generators.diffusion import training_target, x0_and_eps

    g = torch.Generator().manual_seed(0)
    x0, eps, a = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g), torch.rand(4, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    out = training_target(prediction, x0, eps, a)
    assert torch.equal(out, {"epsilon": eps, "sample": x0}.get(prediction, a.sqrt() * eps - (1 - a).sqrt() * x0))
    for got, want in zip(x0_and_eps(out, xt, a, prediction), (x0, eps)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_trained_subset_that_matches_nothing_is_one_line():
    from diffusers import DDIMScheduler

    with pytest.raises(ConfigError, match=r"trainable \['bais'\] matches no parameter"):
        minimax_finetune(tiny_unet(), DDIMScheduler().alphas_cumprod, "epsilon", torch.zeros(6, 1, 8, 8),
                         torch.arange(6) % 3, 3, MinimaxSpec(steps=1, batch=6, trainable=["bais"]), progress=False)


def _step_gradients(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist
    from diffusers import DDIMScheduler

    from generators.minimax import step_loss

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    g = torch.Generator().manual_seed(2)
    images, labels = torch.rand(12, 1, 8, 8, generator=g) * 2 - 1, torch.arange(12) % 3
    real, fake = Banks(8), Banks(8)
    for c in range(3):  # banks as after a few steps, so both terms are on
        real.push(c, torch.rand(4, 64, generator=g) * 2 - 1)
        fake.push(c, torch.rand(4, 64, generator=g) * 2 - 1)
    model = tiny_unet()
    loss, logs, _ = step_loss(model, images, labels, DDIMScheduler().alphas_cumprod, "v_prediction", 3,
                              MinimaxSpec(batch=9), 0, real, fake, rank, world)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for grad in grads.values():
        dist.all_reduce(grad)
    if rank == 0:
        torch.save({"grads": grads, "logs": logs}, out)
    dist.destroy_process_group()


def test_two_processes_take_the_gradient_one_process_takes():
    """The Minimax terms' per-class min and max are the whole batch's on every process, not each share's."""
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:  # 9 items: uneven shares of 5 and 4
        for world in (1, 2):
            mp.spawn(_step_gradients, args=(world, f"file://{d}/init{world}", f"{d}/{world}.pt"), nprocs=world)
        one, two = (torch.load(f"{d}/{w}.pt", weights_only=True) for w in (1, 2))
    assert one["logs"]["pos"] > 0 and one["logs"]["neg"] > 0
    assert two["logs"]["pos"] == pytest.approx(one["logs"]["pos"], rel=1e-5)
    assert two["logs"]["neg"] == pytest.approx(one["logs"]["neg"], rel=1e-5)
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-7)
