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
from genprior.export import class_folder_name


@dataclass
class Target:
    unit: torch.Tensor  # [N, C, H, W] in [0, 1]
    labels: torch.Tensor | None
    dataset: str
    run_dir: Path | None = None  # set: results go into its metrics.json


def load_target(path: str | Path, dataset: str | None = None, root: str | None = None) -> Target:
    from genprior.setfile import load_set

    path = Path(path)
    if is_run_dir(path):
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


def is_run_dir(path: str | Path) -> bool:
    """A run directory (its results go into its metrics.json), told apart from a folder of images."""
    return (Path(path) / "synset.safetensors").is_file()


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
        a = _read_pixels(f)
        sizes.setdefault(a.shape, []).append(f.name)
        arrays.append(a)
    if len(sizes) > 1:
        desc = ", ".join(f"{h}x{w}x{c} ({len(v)}, e.g. {v[0]})" for (h, w, c), v in sizes.items())
        raise ConfigError(f"images of mixed sizes in {folder}: {desc}; resize them to one size first")
    return _stack_unit(arrays), (torch.tensor(labels) if subdirs else None)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _read_pixels(f: Path) -> np.ndarray:
    """One image as [H, W, C] integers at its own bit depth: uint8, or uint16 for 16-bit grayscale.

    Pillow's convert("L") clips a 16-bit image instead of scaling it (every value above 255
    becomes white), so 16-bit stays 16-bit here and _stack_unit divides by 65535. Mode "I"
    (32-bit signed) is how older Pillows open a 16-bit PNG; none of the formats read here stores
    wider integers, so "I" is taken as 16-bit, and values outside 0-65535 (no known scale) are refused."""
    try:
        with Image.open(f) as im:
            if im.mode in _SIXTEEN_BIT or im.mode == "I":
                a = np.asarray(im)
                if a.size and (a.min() < 0 or a.max() > 65535):
                    raise ConfigError(f"image {f} is 32-bit with values {a.min()}..{a.max()}, outside 16 bits; "
                                      "save it as 8- or 16-bit first")
                a = a.astype(np.uint16)
            else:
                a = np.asarray(im.convert("L") if im.mode in ("L", "1") else im.convert("RGB"))
    except OSError as e:
        raise ConfigError(f"cannot read image {f}: {e}") from None
    return a[:, :, None] if a.ndim == 2 else a


def _stack_unit(arrays: list[np.ndarray]) -> torch.Tensor:
    """Same-shaped [H, W, C] integer images -> [N, C, H, W] in [0, 1], each divided by its own
    full scale (255 or 65535: a folder may mix depths). Filled image by image, so at most one
    image is ever held as floats beside the result."""
    h, w, c = arrays[0].shape
    unit = torch.empty(len(arrays), c, h, w)
    for i, a in enumerate(arrays):
        full_scale = float(np.iinfo(a.dtype).max)
        unit[i] = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1) / full_scale
    return unit


def _class_labels(folder: Path, subdirs: list[Path], class_names: tuple[str, ...]) -> list[int]:
    """Each class folder's label: its number (`7`, or `007_sneaker` as runs write them), else its
    class name in the data set's order (`Sneaker`, `ankle_boot`, `T_shirt_top`: named as the
    export names them, any case); folders named neither take their sorted position
    (torchvision's ImageFolder). A mix of the three is refused: a position among folders some
    of which are numbered would be a guess."""
    key = lambda name: class_folder_name(name).lower()
    names = {key(n): i for i, n in enumerate(class_names)}
    numbered = [re.fullmatch(r"(\d+)(_.*)?", d.name) for d in subdirs]
    if all(numbered):
        return [int(m.group(1)) for m in numbered]
    if all(key(d.name) in names for d in subdirs):
        return [names[key(d.name)] for d in subdirs]
    if any(numbered) or any(key(d.name) in names for d in subdirs):
        raise ConfigError(f"{folder}: name every class folder by its number (7 or 007_sneaker) or by its class "
                          f"name ({', '.join(map(class_folder_name, class_names[:3]))}, ...), not a mix")
    return list(range(len(subdirs)))
