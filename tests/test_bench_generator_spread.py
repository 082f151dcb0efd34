"""bench/generator_spread.py's plaid share: the measure that tells an unfiltered upsampling's
2-pixel period from real images (generators/stylegan2.py, UPSAMPLES)."""
import pytest
import torch


@pytest.fixture
def plaid(bench):
    return bench("generator_spread").plaid


def test_plaid_is_the_share_at_the_two_pixel_period(plaid):
    i = torch.arange(8)
    stripes = (i % 2).float().expand(8, 8)  # alternates along x only: all of its energy at Nyquist
    checker = ((i[:, None] + i[None, :]) % 2).float()
    ramp = i.float()[None, :].expand(8, 8)  # no 2-px period (as a periodic signal, a little at Nyquist)
    assert plaid(stripes.reshape(1, 64)) == pytest.approx(1.0)
    assert plaid(checker.reshape(1, 64)) == pytest.approx(1.0)
    assert plaid(ramp.reshape(1, 64)) < 0.05
    # averaged over images: a blank image adds no energy, a ramp adds energy elsewhere
    assert plaid(torch.stack([stripes, torch.zeros(8, 8)]).reshape(2, 64)) == pytest.approx(1.0)
    assert 0.05 < plaid(torch.stack([stripes, ramp]).reshape(2, 64)) < 0.95
    assert plaid(torch.ones(1, 49)) is None  # 7 x 7: no Nyquist bin
