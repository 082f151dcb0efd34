"""Minimax fine-tuning: the banks, the two terms by hand, and only the DiffFit subset moving."""
import torch

from generators.minimax import Banks, MinimaxSpec, cosine, minimax_finetune, minimax_terms


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
