"""Within-class variety of shipped generators against the real data, in pixel space.

    python bench/generator_spread.py                                  # every generator in assets/generators
    python bench/generator_spread.py assets/generators/fashion_mnist_dcgan --per-class 100

For each class it draws n samples (z ~ N(0, I), const noise) and n random real training
images, and reports the RMS L2 distance of an image to its class mean (within) and of
the class means to the overall mean (between), images in [-1, 1]. A generator whose
within-class spread is far below the real one has collapsed onto a few modes per class:
GLaD then has few distinct images to start its latents from. `plaid` is the share of the
images' spectral energy (mean removed) at the 2-pixel period along either axis: an
upsampling without a low-pass (generators/stylegan2.py, UPSAMPLES) leaves it above the real
data's. Each generator's row also carries what its training recorded in its JSON (steps,
wall time, FID/KID and the command; generators/train.py), so one command lays recipes side
by side. Seeded; CPU, seconds.
Writes bench/results/generator_spread.json.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from generators.io import load_generator
from genprior.data import load_split, to_unit
from genprior.files import write_json

ROOT = Path(__file__).resolve().parent.parent


def spread(x: torch.Tensor) -> dict:
    """x: [classes, n, ...] -> within- and between-class RMS distances."""
    x = x.flatten(2)
    means = x.mean(1, keepdim=True)
    within = (x - means).pow(2).sum(-1).mean().sqrt()
    between = (means.squeeze(1) - x.mean((0, 1))).pow(2).sum(-1).mean().sqrt()
    return {"within": round(within.item(), 3), "between": round(between.item(), 3), "plaid": plaid(x)}


def plaid(x: torch.Tensor) -> float | None:
    """Share of the power spectrum (per-image mean removed) in the Nyquist row and column of
    [..., r, r] images flattened to [..., r * r]; None for an odd r (no Nyquist bin)."""
    r = int(round(x.shape[-1] ** 0.5))
    if r % 2:
        return None
    x = x.reshape(-1, r, r)
    power = torch.fft.fft2(x - x.mean((-2, -1), keepdim=True)).abs().square().mean(0)
    at_nyquist = power[r // 2].sum() + power[:, r // 2].sum() - power[r // 2, r // 2]
    return round((at_nyquist / power.sum()).item(), 6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("generators", nargs="*", help="generator paths (default: assets/generators/*)")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    paths = a.generators or sorted(str(q.with_suffix("")) for q in (ROOT / "assets" / "generators").glob("*.json"))
    real = load_split("fashion_mnist", "train")
    x = to_unit(real.images, "fashion_mnist", "normalized") * 2 - 1
    g = torch.Generator().manual_seed(a.seed)
    idx = torch.stack([torch.nonzero(real.labels == c).flatten()[torch.randperm(int((real.labels == c).sum()),
                                                                                  generator=g)[:a.per_class]]
                       for c in range(10)])
    rows = {"real FashionMNIST train": spread(x[idx])}
    labels = torch.arange(10).repeat_interleave(a.per_class)
    for path in paths:
        gen = load_generator(path)
        with torch.no_grad():
            z = gen.sample_latents(labels, "z", torch.Generator().manual_seed(a.seed))
            row = rows[Path(path).name] = spread(gen.decode(z, labels, "z").clamp(-1, 1).view(10, a.per_class, -1))
        fid = gen.info.get("fid") or {}
        row["trained"] = {
            "steps": gen.info.get("steps"), "wall_seconds": gen.info.get("wall_seconds"),
            "fid": fid.get("fid"), "kid": fid.get("kid"), "fid_images": fid.get("n"),
            "kwargs": gen.config, "command": gen.info.get("command")}
    for name, r in rows.items():
        t = r.get("trained", {})
        print(f"{name:32s} within {r['within']:7.3f}  between {r['between']:7.3f}  plaid {r['plaid']}"
              + (f"  FID {t['fid']:.1f} after {t['steps']} steps" if t.get("fid") is not None else ""))
    out = ROOT / "bench" / "results" / "generator_spread.json"
    write_json(out, {"command": "python bench/generator_spread.py " + shlex.join(sys.argv[1:]),
                     "per_class": a.per_class, "seed": a.seed, "rows": rows})
    print("wrote", out)


if __name__ == "__main__":
    main()
