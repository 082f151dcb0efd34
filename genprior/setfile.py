"""The saved synthetic set: the one file format the protocol and the metrics judge.

A set is `images` [N, C, H, W] float, `labels` [N] int64 and, for trajectory-matching
sets, the learned training `lr`. It is written as safetensors with string metadata:

    format   genprior.set/1
    dataset  the data set whose classes the labels index (e.g. fashion_mnist)
    space    what the pixel values mean: "unit" ([0, 1] pixels), "normalized"
             (the data set's mean/std applied) or "zca" (normalized, then ZCA-whitened
             as genprior.augment.ZCA fits it on the train split)

Sets made by other tools load too: a safetensors or a `torch.save`d dict with `images`
and `labels` (read with weights_only=True, so no code runs); their space defaults to
"unit" unless given.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from genprior.data import VALUE_SPACES
from genprior.errors import ConfigError
from genprior.files import save_safetensors

FORMAT = "genprior.set/1"


@dataclass
class SavedSet:
    images: torch.Tensor
    labels: torch.Tensor
    dataset: str
    space: str
    lr: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def ipc(self) -> int:
        return int(torch.bincount(self.labels).max())


def save_set(path: str | Path, images: torch.Tensor, labels: torch.Tensor, dataset: str,
             space: str = "normalized", lr: float | None = None, meta: dict | None = None) -> Path:
    """Write atomically (an interrupted run never leaves half a set); the same set gives the same bytes."""
    _check_tensors(images, labels, str(path))
    if space not in VALUE_SPACES:
        raise ConfigError(f"unknown set space {space!r}; valid: {', '.join(VALUE_SPACES)}")
    tensors = {"images": images.detach().float().contiguous().cpu(),
               "labels": labels.detach().long().contiguous().cpu()}
    if lr is not None:
        tensors["lr"] = torch.tensor([float(lr)])
    header = {"format": FORMAT, "dataset": dataset, "space": space,
              "extra": json.dumps(meta or {}, sort_keys=True)}
    return save_safetensors(tensors, path, header)


def load_set(path: str | Path, dataset: str | None = None, space: str | None = None) -> SavedSet:
    """Load and validate a set. `dataset`/`space` fill in what a foreign file does not say."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"synthetic set file not found: {path}")
    header: dict = {}
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"{path} is not a readable safetensors file ({e})") from None
    else:
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickles that need code, truncated files, not-a-tensor-file
            raise ConfigError(f"{path} is not a tensor file that loads with weights_only=True "
                              f"({type(e).__name__})") from None
        if not isinstance(tensors, dict):
            raise ConfigError(f"{path} holds a {type(tensors).__name__}; expected a dict with 'images' and 'labels'")
    missing = [k for k in ("images", "labels") if k not in tensors]
    if missing:
        raise ConfigError(f"{path} has no {' or '.join(missing)} tensor (keys: {', '.join(map(str, tensors)) or 'none'})")
    images, labels, lr = tensors["images"], tensors["labels"], tensors.get("lr")
    if isinstance(lr, (int, float)):  # a foreign .pt may hold the lr as a plain number
        lr = torch.tensor([float(lr)])
    bad = [k for k, t in (("images", images), ("labels", labels), ("lr", lr)) if t is not None and not torch.is_tensor(t)]
    if bad:
        raise ConfigError(f"{path}: {', '.join(bad)} must be tensors (got {', '.join(type(tensors[k]).__name__ for k in bad)})")
    _check_tensors(images, labels, str(path))
    dataset = header.get("dataset") or dataset
    if not dataset:
        raise ConfigError(f"{path} does not say which data set it distills; pass dataset=NAME")
    space = header.get("space") or space or "unit"
    if space not in VALUE_SPACES:
        raise ConfigError(f"{path}: unknown space {space!r}; valid: {', '.join(VALUE_SPACES)}")
    try:
        extra = json.loads(header.get("extra", "{}"))
    except json.JSONDecodeError:
        raise ConfigError(f"{path}: its 'extra' metadata is not valid JSON; rewrite the file with "
                          f"genprior.setfile.save_set") from None
    return SavedSet(images.float(), labels.long(), dataset, space,
                    None if lr is None else float(lr.reshape(-1)[0]), extra if isinstance(extra, dict) else {})


def check_against(saved: SavedSet, channels: int, resolution: int, num_classes: int, source: str) -> None:
    """A set must fit the data set it is judged on: shape, class range."""
    _, c, h, w = saved.images.shape
    if (c, h, w) != (channels, resolution, resolution):
        raise ConfigError(f"{source}: images are {c}x{h}x{w}, but {saved.dataset} needs "
                          f"{channels}x{resolution}x{resolution}")
    lo, hi = int(saved.labels.min()), int(saved.labels.max())
    if lo < 0 or hi >= num_classes:
        raise ConfigError(f"{source}: labels span {lo}..{hi}, but {saved.dataset} has classes 0..{num_classes - 1}")


def _check_tensors(images: torch.Tensor, labels: torch.Tensor, source: str) -> None:
    if images.ndim != 4:
        raise ConfigError(f"{source}: images must be [N, C, H, W], got shape {list(images.shape)}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ConfigError(f"{source}: {len(images)} images but labels of shape {list(labels.shape)}")
    if len(images) == 0:
        raise ConfigError(f"{source}: the set is empty")
    if images.is_floating_point() is False or labels.is_floating_point():
        raise ConfigError(f"{source}: images must be float and labels integer "
                          f"(got {images.dtype}, {labels.dtype})")
    if not torch.isfinite(images).all():
        raise ConfigError(f"{source}: images contain NaN or inf")
