"""Where the configs and the shipped generators are.

In a checkout: the top-level configs/ and assets/, the folders people edit. An installed
package (pip install ., a wheel; setup.py maps the two folders into it) has no checkout
beside it and carries copies as genprior/configs and genprior/assets. Everything that reads
a config group or a shipped generator asks here, so the same command works from any
directory in both cases."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    inside = PACKAGE / name  # present only in an installed (non-editable) package
    return inside if inside.is_dir() else PACKAGE.parent / name


CONFIG_DIR = _folder("configs")
ASSETS_DIR = _folder("assets")


def shipped(path: str | Path) -> Path:
    """`path` as given if it exists from here (or is absolute), else the shipped file of that name
    (`assets/generators/...` resolves inside the checkout or the installed package), else as given
    (a hub id, or a missing file that the loader names)."""
    p = Path(path)
    if p.is_absolute() or p.exists() or Path(f"{p}.json").exists():
        return p
    ours = ASSETS_DIR.parent / p
    return ours if ours.exists() or Path(f"{ours}.json").exists() else p
