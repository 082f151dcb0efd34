"""Pictures of a synthetic set: grid.png (one row per class) and an ImageFolder of PNGs."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torchvision.utils import make_grid

from genprior.files import write_png

# A set driven into its bound (HaBa's and a generator's tanh, a PNG's clip for any set) piles its
# pixels up at the ends of the range, where a tanh passes no gradient and a picture is black and
# white: haba=mtt at the paper's hallucinator lr had 99.5 % of its pixels there after 10 steps and
# stopped learning (docs/measurements.md, HaBa). Real data has its own share there (FashionMNIST's background:
# 53 %), so the set's share is compared with it.
END_LEVELS = 2.5 / 255  # what a PNG rounds to within two levels of 0 or 255
PILED_ABOVE_REAL = 0.25  # a set with this much more of its pixels at the ends than the real data: say so


def share_at_ends(unit_images: torch.Tensor) -> float:
    """The fraction of values in [0, 1] images within END_LEVELS of 0 or 1."""
    return ((unit_images <= END_LEVELS) | (unit_images >= 1 - END_LEVELS)).float().mean().item()


def piled_at_ends(unit_images: torch.Tensor, real_unit_images: torch.Tensor) -> str | None:
    """One line when a set's pixels pile up at the ends of the range far beyond the real data's, else None."""
    mine, real = share_at_ends(unit_images), share_at_ends(real_unit_images)
    if mine - real <= PILED_ABOVE_REAL:
        return None
    return (f"{mine:.1%} of the set's pixels sit at the ends of the pixel range, against {real:.1%} of the real "
            f"data's: a bounded rendering (a tanh) passes no gradient there, an unbounded set has drifted out of "
            f"the range and its PNGs clip it; the synset's lr may be too large (bench/set_values.py compares runs)")


def grid(unit_images: torch.Tensor, labels: torch.Tensor, num_classes: int, max_per_class: int = 20) -> torch.Tensor:
    """One row per class, up to `max_per_class` images each, as one (C, H, W) image in [0, 1];
    empty cells stay black."""
    per_class = [unit_images[labels == c][:max_per_class] for c in range(num_classes)]
    cols = max(1, max(len(x) for x in per_class))
    cells = torch.zeros(num_classes * cols, *unit_images.shape[1:])
    for c, x in enumerate(per_class):
        cells[c * cols:c * cols + len(x)] = x.cpu()
    return make_grid(cells, nrow=cols, padding=2, pad_value=1.0)


def save_grid(unit_images: torch.Tensor, labels: torch.Tensor, num_classes: int, path: str | Path,
              max_per_class: int = 20) -> Path:
    return write_png(path, grid(unit_images, labels, num_classes, max_per_class))


def class_folder_name(class_name: str) -> str:
    """A class name as a folder name: every run of other characters than letters and digits
    becomes one "_" ("T-shirt/top" -> "T_shirt_top"). Exported folders are named by it, and
    genprior/metrics/targets.py matches class folders by it, so what is exported reads back."""
    return re.sub(r"[^A-Za-z0-9]+", "_", class_name).strip("_")


def save_image_folder(unit_images: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...],
                      root: str | Path) -> Path:
    """root/<index>_<class name>/<n>.png, loadable with torchvision's ImageFolder."""
    root = Path(root)
    counts: dict[int, int] = {}
    for x, y in zip(unit_images.cpu(), labels.tolist()):
        folder = root / f"{y:03d}_{class_folder_name(class_names[y])}"
        write_png(folder / f"{counts.get(y, 0):04d}.png", x)
        counts[y] = counts.get(y, 0) + 1
    return root
