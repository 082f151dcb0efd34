"""One epoch of plain supervised training on tensors in memory.

The protocol (networks judged on a set), the MTT experts (networks trained on real
data) and DC's inner loop (a network following the synthetic set) all train the same
way; only where their augmentation seeds come from differs.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from genprior.augment import DSA


def train_epoch(net: torch.nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
                order: torch.Tensor, batch: int, dsa: DSA | None = None,
                dsa_seed: Callable[[int], int] | None = None, autocast=None,
                on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """SGD over images[order] in batches; `dsa_seed(start)` seeds each batch's augmentation.

    Returns the last batch's loss (detached)."""
    device = next(net.parameters()).device
    loss = torch.zeros(())
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        x, y = images[idx].to(device, non_blocking=True), labels[idx].to(device, non_blocking=True)
        if dsa is not None:
            x = dsa(x, dsa_seed(start))
        with autocast or contextlib.nullcontext():
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step()
    return loss.detach()
