"""What can be measured: a run directory, a saved set file, or a folder of images.

Each becomes images in [0, 1] with labels (None for a flat folder) and the data set to
compare against.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genprior.data import dataset_info, to_unit
from genprior.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Target:
    unit: torch.Tensor  # [N, C, H, W] in [0, 1]
    labels: torch.Tensor | None
    dataset: str
    run_dir: Path | None = None  # set: results go into its metrics.json


def load_target(path: str | Path, dataset: str | None = None, root: str | None = None) -> Target:
    from genprior.setfile import load_set

    path = Path(path)
    if path.is_dir() and (path / "synset.safetensors").is_file():
        s = load_set(path / "synset.safetensors", dataset)
        return Target(to_unit(s.images, s.dataset, s.space, root), s.labels, s.dataset, path)
    if path.is_file():
        s = load_set(path, dataset)
        return Target(to_unit(s.images, s.dataset, s.space, root), s.labels, s.dataset)
    if path.is_dir():
        if dataset is None:
            raise ConfigError(f"{path} is a folder of images: say which data set it shows (dataset=NAME)")
        unit, labels = read_image_folder(path, dataset_info(dataset).num_classes)
        return Target(unit, labels, dataset)
    raise ConfigError(f"not found: {path} (give a run directory, a set file or a folder of images)")


def read_image_folder(folder: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flat folder -> unlabeled; class subfolders (sorted, or named NNN_... as runs write them) -> labels."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    groups = [(None, folder)] if not subdirs else [(_class_of(d, i), d) for i, d in enumerate(subdirs)]
    files, labels = [], []
    for c, d in groups:
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [c] * len(found)
    if not files:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if subdirs and max(labels) >= num_classes:
        raise ConfigError(f"{folder} has {len(subdirs)} class folders; the data set has {num_classes} classes")
    arrays, sizes = [], {}
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L") if im.mode in ("L", "1", "I", "I;16") else im.convert("RGB")
                a = np.asarray(im)
        except OSError as e:
            raise ConfigError(f"cannot read image {f}: {e}") from None
        a = a[:, :, None] if a.ndim == 2 else a
        sizes.setdefault(a.shape, []).append(f.name)
        arrays.append(a)
    if len(sizes) > 1:
        desc = ", ".join(f"{h}x{w}x{c} ({len(v)}, e.g. {v[0]})" for (h, w, c), v in sizes.items())
        raise ConfigError(f"images of mixed sizes in {folder}: {desc}; resize them to one size first")
    unit = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return unit, (torch.tensor(labels) if subdirs else None)


def _class_of(d: Path, position: int) -> int:
    m = re.match(r"(\d+)_", d.name)
    return int(m.group(1)) if m else position
