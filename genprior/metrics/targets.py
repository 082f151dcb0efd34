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

from genprior.data import IMAGE_SUFFIXES, dataset_info, to_unit
from genprior.errors import ConfigError


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
        unit, labels = read_image_folder(path, dataset_info(dataset).class_names)
        return Target(unit, labels, dataset)
    raise ConfigError(f"not found: {path} (give a run directory, a set file or a folder of images)")


def read_image_folder(folder: Path, class_names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flat folder -> unlabeled; class subfolders -> labels (see _class_labels)."""
    num_classes = len(class_names)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    groups = [(None, folder)] if not subdirs else list(zip(_class_labels(folder, subdirs, class_names), subdirs))
    files, labels = [], []
    for c, d in groups:
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if found and c is not None and c >= num_classes:  # by its number, or its position among too many folders
            raise ConfigError(f"{folder}: class folder {d.name} is label {c}, but the data set has "
                              f"{num_classes} classes (labels 0-{num_classes - 1})")
        files += found
        labels += [c] * len(found)
    if not files:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
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


def _class_labels(folder: Path, subdirs: list[Path], class_names: tuple[str, ...]) -> list[int]:
    """Each class folder's label: its number (`7`, or `007_sneaker` as runs write them), else its
    class name in the data set's order (`Sneaker`, `ankle_boot`); folders named neither take
    their sorted position (torchvision's ImageFolder). A mix of the three is refused: a position
    among folders some of which are numbered would be a guess."""
    key = lambda name: name.lower().replace(" ", "_")
    names = {key(n): i for i, n in enumerate(class_names)}
    numbered = [re.fullmatch(r"(\d+)(_.*)?", d.name) for d in subdirs]
    if all(numbered):
        return [int(m.group(1)) for m in numbered]
    if all(key(d.name) in names for d in subdirs):
        return [names[key(d.name)] for d in subdirs]
    if any(numbered) or any(key(d.name) in names for d in subdirs):
        raise ConfigError(f"{folder}: name every class folder by its number (7 or 007_sneaker) or by its class "
                          f"name ({', '.join(class_names[:3])}, ...), not a mix")
    return list(range(len(subdirs)))
