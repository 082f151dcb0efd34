"""The exponential moving average of a model's weights: what the project's trainings save.

The GANs (generators/train.py), the diffusion models (generators/train_diffusion.py) and the
Minimax fine-tune (generators/minimax.py) keep the same EMA, StyleGAN2's: a half-life counted
in images, so its meaning does not change with the batch size, and capped early on at a
fraction of the images seen, so the average soon forgets the random initial weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, images_seen: int, batch: int, ema_kimg: float,
               ema_rampup: float) -> None:
    """Move `ema`'s parameters toward `model`'s after a step of `batch` images (`images_seen` in
    all): half-life ema_kimg thousand images, at most ema_rampup x images_seen (0: no cap).
    Buffers (BatchNorm statistics, stored noise) are copied, not averaged."""
    half_life = min(ema_kimg * 1000, images_seen * ema_rampup) if ema_rampup else ema_kimg * 1000
    beta = 0.5 ** (batch / max(half_life, 1e-8))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
