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

_COMPILED: dict[str, Callable] = {}  # one compiled forward per architecture, shared by every network of it


def compiled_forward(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`net(x)` through torch.compile, compiled once per architecture in this process.

    The graph takes the parameters and buffers as inputs (torch.func.functional_call on a
    parameter-free copy), so a fresh network of the same architecture (the next run of a
    protocol) reuses the compiled code instead of tracing again. On a 2-core CPU a
    ConvNet training step ran 1.85x faster this way (bench/results/protocol_speed_cpu.json)."""
    import copy

    from torch.func import functional_call

    key = repr(net)  # the module tree, shapes and paddings included
    if key not in _COMPILED:
        template = copy.deepcopy(net).to("meta")
        _COMPILED[key] = torch.compile(lambda params, buffers, x: functional_call(template, (params, buffers), (x,)))
    fn = _COMPILED[key]
    params, buffers = dict(net.named_parameters()), dict(net.named_buffers())
    return lambda x: fn(params, buffers, x)


def standardized(x: torch.Tensor) -> torch.Tensor:
    """A batch at mean 0 and std 1 over all its values, as HaBa's evaluation feeds every batch
    (before augmentation): blind to a set's overall scale and offset."""
    return (x - x.mean()) / x.std()


def train_epoch(net: torch.nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
                order: torch.Tensor, batch: int, dsa: DSA | None = None,
                dsa_seed: Callable[[int], int] | None = None, autocast=None,
                on_step: Callable[[], None] | None = None,
                forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                standardize: bool = False) -> torch.Tensor:
    """SGD over images[order] in batches; `dsa_seed(start)` seeds each batch's augmentation.
    `forward` replaces net(x) (e.g. compiled_forward(net)); `standardize`: each batch through
    `standardized` before its augmentation.

    Returns the last batch's loss (detached)."""
    forward = forward or net
    device = next(net.parameters()).device
    loss = torch.zeros(())
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        x, y = images[idx].to(device, non_blocking=True), labels[idx].to(device, non_blocking=True)
        if standardize:
            x = standardized(x)
        if dsa is not None:
            x = dsa(x, dsa_seed(start))
        with autocast or contextlib.nullcontext():
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step()
    return loss.detach()
