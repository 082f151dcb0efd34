"""genprior/export.py: the warning for a set piled up at the ends of the pixel range."""
import torch

from genprior.export import piled_at_ends, share_at_ends


def test_share_at_ends_counts_values_within_two_levels_of_either_end():
    x = torch.tensor([0.0, 2 / 255, 3 / 255, 0.5, 252 / 255, 253 / 255, 1.0, 0.2])
    assert share_at_ends(x) == 4 / 8  # 0, 2/255 at the bottom; 253/255, 1 at the top


def test_a_set_pushed_into_its_bound_is_reported_and_a_real_like_one_is_not():
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(200, 1, 8, 8, generator=g) < 0.5) * torch.rand(200, 1, 8, 8, generator=g)  # half background
    assert 0.45 < share_at_ends(real) < 0.55
    assert piled_at_ends(real[:50], real) is None  # the real data's own share is no warning
    binary = (torch.rand(50, 1, 8, 8, generator=g) < 0.5).float()  # haba=mtt at lr 100: black and white
    line = piled_at_ends(binary, real)
    assert line is not None and line.startswith("100.0% of the set's pixels") and "\n" not in line
    mid_gray = torch.full((50, 1, 8, 8), 0.5)  # a washed-out set has fewer at the ends: not this warning
    assert piled_at_ends(mid_gray, real) is None


def test_the_warning_starts_25_points_above_the_real_share():
    real = torch.cat([torch.zeros(40), torch.full((60,), 0.5)])  # 40 % at the ends
    assert piled_at_ends(torch.cat([torch.zeros(60), torch.full((40,), 0.5)]), real) is None  # +20 points
    assert piled_at_ends(torch.cat([torch.ones(70), torch.full((30,), 0.5)]), real) is not None  # +30 points
    assert share_at_ends(torch.tensor([2.4 / 255, 2.6 / 255, 252.6 / 255, 252.4 / 255])) == 0.5  # PNG rounding
