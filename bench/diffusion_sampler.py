"""How a diffusion model's samples depend on the sampler: FID/KID and within-class spread per (steps, guidance).

    python bench/diffusion_sampler.py assets/generators/fashion_mnist_unet --steps 5 10 20 --guidance 1 2 4
    python bench/diffusion_sampler.py ~/.cache/genprior/minimax/fashion_mnist-<digest>/model --name minimax

For every setting: n samples with classes balanced (generators.train.fid_of, the figure
the training run reports) against the FashionMNIST test split with the real Inception
network, the within- and between-class spread of `--per-class` samples per class
(bench/generator_spread.py's measure; real train images: within 12.7), and seconds per
image of sampling (no gradient). This is what the diffusion and minimax presets choose
their steps and guidance from. Writes bench/results/diffusion_sampler_<name>.json;
rerunning skips finished settings.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from generator_spread import spread  # bench/generator_spread.py (the script's own folder)
from resumable import RESULTS, machine, run_parts  # bench/resumable.py


def measure(path: str, steps: int, guidance: float, n: int, per_class: int) -> dict:
    from generators.diffusion import load_diffusion
    from generators.train import fid_of

    g = load_diffusion(path, steps=steps, guidance=guidance)
    labels = torch.arange(g.num_classes).repeat_interleave(per_class)
    t0 = time.perf_counter()
    with torch.no_grad():
        x = g.decode(g.sample_latents(labels, "z", torch.Generator().manual_seed(0)), labels)
    per_image = (time.perf_counter() - t0) / len(labels)
    return {"steps": steps, "guidance": guidance, "spread": spread(x.clamp(-1, 1).view(g.num_classes, per_class, -1)),
            "seconds_per_image": round(per_image, 4), **(fid_of(g, "fashion_mnist", n) or {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a diffusers pipeline folder")
    p.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    p.add_argument("--n", type=int, default=2000, help="samples for FID/KID")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--name", help="results name (default: the model folder's name)")
    a = p.parse_args()
    parts = [(f"steps{s}_guidance{w:g}", lambda s=s, w=w: measure(a.model, s, w, a.n, a.per_class))
             for s in a.steps for w in a.guidance]

    def show(r):
        return (f"FID {r.get('fid')} KID {r.get('kid')} spread within {r['spread']['within']} "
                f"{r['seconds_per_image']} s/image")
    run_parts(parts, RESULTS / f"diffusion_sampler_{a.name or Path(a.model).name}.json",
              {"model": a.model, "n": a.n, "machine": machine()}, show)


if __name__ == "__main__":
    main()
