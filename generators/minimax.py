"""Minimax fine-tuning of a diffusion model (Gu et al., CVPR 2024), for a pixel UNet.

Before sampling a synthetic set, a pretrained class-conditional diffusion model is
fine-tuned on the data set with two extra terms on its x0 prediction, each against a
per-class FIFO memory bank of `bank` entries:

    representativeness  lambda_pos * (1 - min cos(x0_pred, real images of its class))
                        pull every prediction toward the real image it is farthest from
    diversity           lambda_neg * max cos(x0_pred, earlier predictions of its class)
                        push it away from the prediction it is closest to

Each term is computed per class present in the batch (over all its items and its whole
bank: one min, one max) and averaged over those classes; cosine on the flattened images.
The banks are updated after the loss, the oldest entry leaving first; a class gets its
terms from its second appearance on. On top: the diffusion loss the model was trained
with (generators/train_diffusion.py), label dropout kept so guidance still works.

Only a DiffFit-style subset is trained: parameters whose names contain "bias", "norm" or
the class embedding (DiffFit's per-block scale factors do not exist in a diffusers UNet;
its GroupNorm scales, which "norm" selects, stand in for them: the official DiT's norms have
no affine parameters, so there the keyword selects nothing and the gammas are the scales),
AdamW at lr 1e-3 without weight decay, and an EMA of them is the result. The official
code (DiT-XL/2 on ImageNet subsets) uses EMA decay 0.9999 over thousands of steps; a
fine-tune of a few hundred steps takes its half-life from `ema_kimg` as the project's
other trainings do.

Batches are drawn as the base model's training draws them (generators/diffusion.py,
training_batch): with replacement and without the official code's horizontal flips, from
the stream seeded(seed, step), the base run's stream too (the shipped UNet was trained
with seed 0, so both see the same images at a step; their t and noise differ).

Several processes (torch.distributed initialized) split each batch. Each process gathers
the whole batch's x0 predictions (its own share live, the others' as values), so the
per-class min and max are those of the whole batch, as in one process; each share's
gradient then comes from its own process, and their sum is the batch's. The banks grow
from the whole batch, so they stay the same everywhere.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from generators.diffusion import training_batch, training_target, x0_and_eps
from generators.ema import update_ema
from genprior.errors import ConfigError
from genprior.options import option
from genprior.progress import progress as progress_bar
from genprior.rng import seeded

DIFFFIT = ("bias", "norm", "class_embedding")


@dataclass
class MinimaxSpec:
    steps: int = option(300, min=1)
    batch: int = option(32, min=1)
    lr: float = option(1e-3, above=0)
    lambda_pos: float = option(0.002, min=0)
    lambda_neg: float = option(0.008, min=0)
    bank: int = option(64, min=1)
    label_dropout: float = option(0.1, min=0, below=1)
    # EMA half-life in thousands of images, but at most ema_rampup x the images seen: at the default
    # 300 steps of 32 the ramp-up decides it (<= 960 images, ~30 steps); 2k binds from step 625 on
    ema_kimg: float = option(2.0, above=0)
    ema_rampup: float = option(0.1, min=0)
    trainable: list[str] = field(default_factory=lambda: list(DIFFFIT))  # name substrings of the trained subset
    seed: int = option(0, min=0)

    def identity(self) -> dict:
        return asdict(self)


class Banks:
    """Per-class FIFO memories of flattened images, `size` entries each, oldest out first."""

    def __init__(self, size: int):
        self.size, self.items = size, {}

    def get(self, c: int) -> torch.Tensor | None:
        return self.items.get(c)

    def push(self, c: int, x: torch.Tensor) -> None:
        x = x.detach().flatten(1)
        have = self.items.get(c)
        self.items[c] = (x if have is None else torch.cat([have, x]))[-self.size:]


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[len(a), len(b)] cosine similarities of flattened rows."""
    return F.normalize(a.flatten(1), dim=1) @ F.normalize(b.flatten(1), dim=1).T


def minimax_terms(x0: torch.Tensor, classes: torch.Tensor, real: Banks, fake: Banks, lambda_pos: float,
                  lambda_neg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(representativeness, diversity) terms of one batch against the banks (before updating them)."""
    pos, neg = x0.new_zeros(()), x0.new_zeros(())
    present = classes.unique().tolist()
    for c in present:
        if fake.get(c) is None:
            continue
        mine = x0[classes == c]
        pos = pos + lambda_pos * (1 - cosine(mine, real.get(c)).min()) / len(present)
        neg = neg + lambda_neg * cosine(mine, fake.get(c)).max() / len(present)
    return pos, neg


def mark_trainable(unet, substrings) -> list[torch.nn.Parameter]:
    """requires_grad only on the parameters whose names contain one of `substrings`."""
    params = []
    for name, p in unet.named_parameters():
        p.requires_grad_(any(s in name for s in substrings))
        if p.requires_grad:
            params.append(p)
    return params


def minimax_finetune(unet, alphas_cumprod: torch.Tensor, prediction: str, images: torch.Tensor,
                     labels: torch.Tensor, null_label: int, spec: MinimaxSpec, progress: bool = True):
    """The EMA of a Minimax fine-tune of `unet` (a copy; `unet` itself is not changed).

    `images` in [-1, 1] with their `labels`; `null_label` the class that label dropout
    uses. Returns (fine-tuned UNet, logs of the last step)."""
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    if spec.batch < world:
        raise ConfigError(f"synset.minimax.batch ({spec.batch}) must be at least the number of processes ({world})")
    model = copy.deepcopy(unet).train()
    params = mark_trainable(model, spec.trainable)
    if not params:
        raise ConfigError(f"synset.minimax.trainable {spec.trainable} matches no parameter of the UNet "
                          f"(DiffFit's subset: {list(DIFFFIT)})")
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    alphas = alphas_cumprod.to(images.device)
    real_bank, fake_bank = Banks(spec.bank), Banks(spec.bank)
    logs = {}
    for step in progress_bar(range(spec.steps), desc="minimax fine-tune", enabled=progress):
        loss, logs, (classes, x0, x0_pred) = step_loss(model, images, labels, alphas, prediction, null_label, spec,
                                                       step, real_bank, fake_bank, rank, world)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            for p in params:
                dist.all_reduce(p.grad)  # each share's gradient from its own process: the sum is the batch's
        opt.step()
        update_ema(ema, model, (step + 1) * spec.batch, spec.batch, spec.ema_kimg, spec.ema_rampup)
        for c in classes.unique().tolist():  # every process holds the whole batch: the banks agree
            real_bank.push(c, x0[classes == c])
            fake_bank.push(c, x0_pred[classes == c])
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema, logs


def step_loss(model, images, labels, alphas, prediction: str, null_label: int, spec: MinimaxSpec, step: int,
              real_bank: Banks, fake_bank: Banks, rank: int = 0, world: int = 1):
    """This process's part of step `step`'s loss (its share of the diffusion loss plus the
    Minimax terms of the whole batch, through its share), the logs, and the whole batch
    (classes, images, x0 predictions, detached) for the banks. Summed over processes, the
    gradients are those of one process taking the whole batch."""
    device = images.device
    batch, classes, seen, t, eps = training_batch(images, labels, spec.batch, spec.label_dropout, null_label,
                                                  len(alphas), seeded(spec.seed, step))  # the same on every process
    mine = torch.arange(spec.batch, device=device)[rank::world]  # this process's share
    x0, a = batch[mine], alphas[t[mine]].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps[mine]
    out = model(xt, t[mine], class_labels=seen[mine]).sample
    x0_pred, _ = x0_and_eps(out, xt, a, prediction)
    diffusion = F.mse_loss(out, training_target(prediction, x0, eps[mine], a)) * len(mine) / spec.batch
    # the whole batch's predictions, this share live: the terms' min and max are the batch's
    batch_pred = _gather(x0_pred.detach(), world).index_put((mine,), x0_pred) if world > 1 else x0_pred
    pos, neg = minimax_terms(batch_pred, classes, real_bank, fake_bank, spec.lambda_pos, spec.lambda_neg)
    logs = {"diffusion": diffusion.item() * spec.batch / len(mine), "pos": pos.item(), "neg": neg.item()}
    return diffusion + pos + neg, logs, (classes, batch, batch_pred.detach())


def _gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """The batch in its original order from every process's strided share (rank r holds items r::world)."""
    if world == 1:
        return x
    import torch.distributed as dist

    n = torch.tensor([len(x)], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    biggest = int(max(s.item() for s in sizes))
    padded = torch.cat([x, x.new_zeros((biggest - len(x), *x.shape[1:]))])
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = x.new_empty((sum(int(s.item()) for s in sizes), *x.shape[1:]))
    for r, (part, size) in enumerate(zip(parts, sizes)):
        out[r::world] = part[:int(size.item())]
    return out
