"""Writing files so that a kill never leaves half of one and the same content gives the same bytes.

Every file a run or a cache writes goes through here: written beside its place under a
name of this process, flushed to the disk, then renamed over it (and the rename flushed), so
a reader sees the old file or the new one, after a kill and after a power cut alike.

safetensors' writer keeps the metadata in a hash map whose order changes from process
to process, so two identical sets would differ in their header bytes and no checksum
could verify a set. `save_safetensors` writes the header with its metadata keys sorted
(the same length, so every offset stays valid) and renames the file into place.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only for the annotation: run directories and caches use this module too
    import torch


def beside(path: Path, tag: str) -> Path:
    """`path`'s name plus this process's pid and `tag`, in its folder: a temporary name that
    another process writing the same path never takes. A long name is cut to keep the whole
    within the 255 bytes a file name may have (bench/ names its results after their overrides)."""
    suffix = f".{os.getpid()}.{tag}"
    head = path.name.encode()[:255 - len(suffix)].decode(errors="ignore")
    return path.with_name(head + suffix)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write `data` to `path` (folders made as needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = beside(path, "tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes on the disk before the name points at them
        tmp.replace(path)
    except BaseException:  # a full disk, a Ctrl-C: no half-written temporary left behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def fsync_path(path: str | Path) -> None:
    """Flush a file, or a folder's entries (a rename into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staged_folder(path: str | Path):
    """A new empty folder beside `path`, named for this process, to fill and then rename into
    place (the caller decides how: over an old one, or not over another's); gone afterwards if
    it was not renamed, however the block ends."""
    path = Path(path)
    tmp = beside(path, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a folder of an earlier process with this pid
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_folder(new: Path, path: Path) -> Path:
    """Rename the whole folder `new` onto `path`, an old `path` set aside first and removed
    after: a kill between the renames still leaves one whole folder on disk."""
    sync_tree(new)
    old = beside(path, "old")
    if path.exists():
        path.replace(old)
    new.replace(path)
    fsync_path(path.parent)
    shutil.rmtree(old, ignore_errors=True)
    return path


def sync_tree(folder: str | Path) -> None:
    """Flush every file and folder under `folder` to the disk: what another library wrote
    (diffusers' save_pretrained) before a manifest declares the folder complete."""
    for root, _, names in os.walk(folder):
        for name in names:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, doc, sort_keys: bool = False) -> Path:
    return write_text(path, json.dumps(doc, indent=2, sort_keys=sort_keys) + "\n")


def write_torch(path: str | Path, obj) -> Path:
    """Atomically `torch.save` `obj` (a checkpoint, a tensor) to `path`."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getvalue())


def write_png(path: str | Path, image: torch.Tensor) -> Path:
    """Atomically write an image in [0, 1] ([C, H, W], or a batch torchvision tiles) as a PNG."""
    import io

    from torchvision.utils import save_image

    buffer = io.BytesIO()
    save_image(image, buffer, format="png")
    return write_bytes(path, buffer.getvalue())


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path,
                     metadata: dict[str, str] | None = None) -> Path:
    """Atomically write `tensors` to `path` with a canonical header; returns the path."""
    from safetensors.torch import save as safetensors_bytes

    data = safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    if "__metadata__" in header:  # first, then the tensors in the writer's (offset) order
        header = {"__metadata__": dict(sorted(header["__metadata__"].items())),
                  **{k: v for k, v in header.items() if k != "__metadata__"}}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return write_bytes(path, struct.pack("<Q", len(text)) + text + data[8 + n:])
