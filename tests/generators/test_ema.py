import subprocess
import sys

import torch
import torch.nn as nn

from generators.ema import update_ema


def pair():
    ema, model = nn.BatchNorm1d(1), nn.BatchNorm1d(1)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        model.weight.fill_(1.0)
        model.running_mean.fill_(3.0)
    return ema, model


def test_the_ema_halves_its_distance_every_half_life_and_copies_buffers():
    ema, model = pair()
    update_ema(ema, model, images_seen=10**6, batch=1000, ema_kimg=1.0, ema_rampup=0.5)  # half-life 1000 images
    assert torch.allclose(ema.weight, torch.tensor([0.5])) and ema.running_mean.item() == 3.0
    ema, model = pair()
    update_ema(ema, model, images_seen=10**6, batch=1000, ema_kimg=1.0, ema_rampup=0.0)  # 0: no ramp-up cap
    assert torch.allclose(ema.weight, torch.tensor([0.5]))


def test_early_on_the_half_life_is_a_fraction_of_the_images_seen():
    ema, model = pair()
    update_ema(ema, model, images_seen=1000, batch=250, ema_kimg=10.0, ema_rampup=0.25)  # min(10k, 250) images
    assert torch.allclose(ema.weight, torch.tensor([0.5]))


def test_the_minimax_fine_tune_takes_its_ema_without_the_gan_trainer():
    code = "import sys, generators.minimax; sys.exit('generators.train' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
