"""How much of a saved set sits at the ends of the pixel range, against the real data.

    python bench/set_values.py runs/bench/haba_mtt_default_2cores_clean runs/bench/haba_mtt_hallucinators_lr100_10steps

A set whose rendering ends in a bound (HaBa's and a generator's tanh, synset.bound) can be
driven into it: its pixels pile up at 0 and 255 and the bound passes no gradient back, so
the set stops learning while the loss still moves a little. This reads each run's exported
PNGs (images/, what a user sees and what FID reads) and reports the fraction of values
within two levels of either end, at the top end alone, and their mean and std in 0..255, beside
the same for the real train split of the run's data set (its background sits at 0, so
compare the top end first). CPU, seconds. Writes bench/results/set_values.json, one entry
per run directory, with the command.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from genprior.data import load_split, to_unit
from genprior.export import share_at_ends
from genprior.files import write_json

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench/results/set_values.json"


def stats(pixels: np.ndarray) -> dict:
    """pixels: uint8-valued array of any shape."""
    return {"at_ends": round(share_at_ends(torch.from_numpy(pixels) / 255), 4),  # what a run's warning counts
            "at_top": round(float(np.mean(pixels >= 253)), 4),
            "mean": round(float(pixels.mean()), 1), "std": round(float(pixels.std()), 1)}


def run_pixels(run_dir: Path) -> np.ndarray:
    files = sorted((run_dir / "images").rglob("*.png"))
    if not files:
        sys.exit(f"no images/ PNGs in {run_dir}: export a set first (genprior/run.py writes them)")
    return np.stack([np.asarray(Image.open(f), dtype=np.uint8) for f in files])


def real_pixels(dataset) -> np.ndarray:
    """dataset: a run's config.dataset. A strided sample of about 10000 (folder data sets load class by class)."""
    images = load_split(dataset.name, "train", dataset.root, dataset.resolution).images
    unit = to_unit(images[::max(1, len(images) // 10000)], dataset.name, "normalized", dataset.root)
    return (unit * 255).round().to(torch.uint8).numpy()  # as write_png (genprior/files.py) quantizes a set's


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dirs", nargs="+", type=Path)
    args = ap.parse_args()
    results = {}
    for run_dir in args.run_dirs:
        dataset = OmegaConf.load(run_dir / "config.yaml").dataset
        real = f"real {dataset.name}" + (f" at {dataset.resolution} px" if dataset.resolution else "")
        if real not in results:
            results[real] = stats(real_pixels(dataset))
            print(f"{real}: {results[real]}")
        results[str(run_dir)] = stats(run_pixels(run_dir))
        print(f"{run_dir}: {results[str(run_dir)]}")
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}  # other runs' entries stay
    write_json(OUT, {**previous, **{k: {**v, "command": command} for k, v in results.items()}})


if __name__ == "__main__":
    main()
