"""How well and how fast real images invert into each latent space of a generator.

    python bench/inversion.py [--generator assets/generators/fashion_mnist_stylegan2] [--ipc 10]
                              [--spaces z w w+ f] [--steps 300] [--lr 0.1]

For every space: the IPC x classes real images a pixel set starts from (seed 0) are
inverted as `synset.init=invert` does (genprior/synsets/invert.py, in a cache of its own so
nothing is reused), and the pixel MSE (in [-1, 1]) before and after and the seconds are
written to bench/results/inversion_<dataset>_<generator>.json with the command. Parts
already there for the same generator weights are kept when rerun.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from generators.io import open_generator
from genprior import artifacts
from genprior.context import DatasetOptions, RunContext
from genprior.data import load_split, to_unit
from genprior.synsets.base import real_start
from genprior.synsets.gan import GanSynset
from genprior.synsets.invert import InvertSpec
from resumable import RESULTS, machine, run_parts  # bench/resumable.py


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", default="assets/generators/fashion_mnist_stylegan2")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--spaces", nargs="+", default=["z", "w", "w+", "f"])
    p.add_argument("--layer", type=int, default=1, help="n of F_n for space f")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=50)
    a = p.parse_args()
    real = load_split(a.dataset, "train")
    spec = InvertSpec(steps=a.steps, lr=a.lr, batch=a.batch)

    def part(space):
        g = open_generator(a.generator)
        s = GanSynset(real, a.ipc, g, space=space, layer=a.layer if space == "f" else None, init="invert")
        targets = to_unit(real_start(real, a.ipc, 0)[0], a.dataset, "normalized") * 2 - 1

        def mse():
            with torch.no_grad():
                return s.decode(torch.arange(len(s))).sub(targets).pow(2).flatten(1).mean(1)
        before = mse()
        with tempfile.TemporaryDirectory() as cache:
            ctx = RunContext(real, a.ipc, 0, DatasetOptions(a.dataset, None, None, "normalized"), cache_dir=Path(cache))
            line = s.invert_real(real, spec, ctx)
        after = mse()
        floats = sum(q.numel() for ps in s.latent_groups().values() for q in ps) // len(s)
        return {"mse_before": round(before.mean().item(), 5), "mse_after": round(after.mean().item(), 5),
                "mse_after_median": round(after.median().item(), 5), "mse_after_max": round(after.max().item(), 5),
                "floats_per_image": floats, "images": len(s), "line": line}

    name = Path(a.generator).name
    run_parts([(f"{space}{a.layer if space == 'f' else ''}_steps{a.steps}_lr{a.lr}", lambda space=space: part(space))
               for space in a.spaces],
              RESULTS / f"inversion_{a.dataset}_{name}.json", {"machine": machine(), "ipc": a.ipc},
              show=lambda f: f"MSE {f['mse_before']:.4f} -> {f['mse_after']:.4f} ({f['floats_per_image']} floats/image)",
              key=artifacts.module_digest(open_generator(a.generator)))  # a retrained generator measures again


if __name__ == "__main__":
    main()
