"""Latents that start as real images: invert each item's real image into the generator.

A pixel set starts from random real images of each class (genprior/synsets/pixel.py);
a GLaD set from truncated samples of its generator, which is only as good as the
generator. Inverting those same real images (IT-GAN's start, Zhao & Bilen 2022) lets a
latent set begin where a pixel set begins: every item's latents are fitted, by Adam on
a reconstruction loss through the frozen generator, to the real image the pixel set
would have started from at the same seed.

    loss(item) = mean over pixels (decode(latents) - real)^2  [+ perceptual * LPIPS]

summed over items, so each item's gradient is its own and the result does not depend on
how items are batched. It works on any LatentSynset (whatever `latent_groups` holds:
z, w, w+, or F_n with its w+ rows) because it only calls `decode`.

The result is an artifact (genprior/artifacts.py) keyed by the generator's weights, the
data set, the latent space, the seed, the real images themselves and every setting, built
batch by batch (each batch written atomically: a killed inversion keeps what it finished),
with the batches shared out among processes.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from genprior import artifacts
from genprior.errors import ConfigError
from genprior.files import save_safetensors
from genprior.options import option
from genprior.progress import progress

FORMAT = "genprior.inversion/1"


@dataclass
class InvertSpec:
    """`synset.invert` (configs/synset/gan.yaml says what each key means)."""
    steps: int = option(300, min=1)
    lr: float = option(0.1, above=0)
    batch: int = option(50, min=1)
    perceptual: float = option(0.0, min=0)


def lpips_loss(device):
    """LPIPS (AlexNet) as a loss, per item (genprior/metrics/diversity.py), or one line saying why
    it is not available here."""
    from genprior.metrics.diversity import lpips_distance
    from genprior.metrics.features import Unavailable

    try:
        return lpips_distance(device)
    except Unavailable as e:
        raise ConfigError(f"synset.invert.perceptual > 0: {e}; put the AlexNet weights there or set "
                          "synset.invert.perceptual=0") from None


def invert_batch(synset, index: torch.Tensor, targets: torch.Tensor, spec: InvertSpec, perceptual=None,
                 desc: str = "inversion", show: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the latents of items `index` to `targets` (in [-1, 1]) in place; (error before, after)
    per item, the pixel MSE. A fresh Adam per batch: the other items get zero gradients and so
    zero Adam moments, and do not move."""
    params = [p for ps in synset.latent_groups().values() for p in ps]
    optimizer = torch.optim.Adam(params, lr=spec.lr)

    def errors():
        x = synset.decode(index)
        mse = (x - targets).pow(2).flatten(1).mean(1)
        return mse, x

    with torch.no_grad():
        before = errors()[0]
    # only the latents move: a fine-tuned generator's weights (synset.finetune) would take a
    # gradient every step for nothing
    trainable = [p for p in synset.generator.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        bar = progress(range(spec.steps), desc=desc, enabled=show)
        for _ in bar:
            mse, x = errors()
            loss = mse.sum()
            if perceptual is not None:
                loss = loss + spec.perceptual * perceptual(x, targets).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.set_postfix(mse=f"{mse.mean().item():.4f}", refresh=False)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    synset.zero_grad(set_to_none=True)  # no stale gradient (latents, a fine-tuned generator) may reach distillation
    with torch.no_grad():
        after = errors()[0]
    return before, after


def invert(synset, targets: torch.Tensor, spec: InvertSpec, identity: dict, cache: Path, dataset: str,
           rank: int = 0, world: int = 1, barrier=lambda: None) -> str:
    """Set `synset`'s latents to the inversion of `targets` (item i -> targets[i], in [-1, 1]).
    `identity` says what else decided them (generator, data set, space, seed, images); with
    the settings and the latents' shapes it names the artifact under cache/inversion/, which
    is reused where it exists, else built (rank r inverts the missing batches k with k % world == r).
    Returns the line the run's start line shows."""
    groups = synset.latent_groups()
    batches = torch.arange(len(synset), device=synset.labels.device).split(spec.batch)
    identity = dict(identity, format=FORMAT, spec=asdict(spec), items=len(synset),
                    groups={name: [list(p.shape) for p in ps] for name, ps in groups.items()})
    directory = artifacts.default_dir(cache, "inversion", dataset, identity)
    artifacts.open_manifest(directory, identity, "latent inversion")
    path = [directory / f"batch_{k:04d}.safetensors" for k in range(len(batches))]
    # rank r builds the missing batches k with k % world == r: a share that does not depend on when
    # each rank looked (a list of what is missing, split by position, would shift as others finish)
    mine = [k for k in range(rank, len(batches), world) if not path[k].is_file()]
    perceptual = lpips_loss(targets.device) if spec.perceptual > 0 and mine else None
    t0 = time.time()
    for k in mine:
        index = batches[k]
        before, after = invert_batch(synset, index, targets[index], spec, perceptual,
                                     desc=f"inverting batch {k + 1}/{len(batches)}", show=rank == 0)
        rows = {f"{name}.{i}": p.detach()[index.to(p.device)] for name, ps in groups.items() for i, p in enumerate(ps)}
        save_safetensors({**rows, "mse_before": before, "mse_after": after}, path[k], {"format": FORMAT})
    barrier()
    before, after = [], []
    with torch.no_grad():
        for k, index in enumerate(batches):
            if not path[k].is_file():
                raise ConfigError(f"latent inversion {directory}: batch {k} missing after the build")
            saved = load_file(str(path[k]))
            for name, ps in groups.items():
                for i, p in enumerate(ps):
                    p[index.to(p.device)] = saved[f"{name}.{i}"].to(p.device, p.dtype)
            before.append(saved["mse_before"])
            after.append(saved["mse_after"])
    before, after = torch.cat(before), torch.cat(after)
    how = f"built in {time.time() - t0:.0f}s" if mine else "cached"
    return (f"latents inverted from {len(synset)} real images ({how}, {directory}): pixel MSE "
            f"{before.mean():.4f} -> {after.mean():.4f} in {spec.steps} Adam steps at lr {spec.lr}")
