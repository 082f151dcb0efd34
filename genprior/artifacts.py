"""Built once, reused while the spec matches: expert trajectories, a Minimax fine-tune, ...

An artifact is a folder. `manifest.json` in it holds the identity that decided its
contents (data set, network, schedule, seed, the files it was built from); every use
checks it, so a folder never silently serves a run that asked for something else.
Default folders are named by a digest of the identity, so different specs never meet.

Two ways to fill one:
- whole (`build_once`): built in a temporary sibling folder, manifest included, then
  renamed into place: a kill leaves no half-built artifact, and two processes racing to
  build the same one both end with a complete folder;
- piece by piece (the experts): `open_manifest` checks or writes the manifest, and the
  caller writes each piece atomically (genprior/files.py), so a killed build keeps the
  pieces it finished.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from genprior.errors import ConfigError
from genprior.files import fsync_path, staged_folder, sync_tree, write_json

if TYPE_CHECKING:
    import torch

MANIFEST = "manifest.json"


def digest(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def default_dir(root: Path, kind: str, name: str, identity: dict) -> Path:
    """root/kind/name-<digest of identity>."""
    return Path(root) / kind / f"{name}-{digest(identity)}"


def files_digest(folder: str | Path) -> str:
    """A digest of every file under `folder` (names and bytes): an input's identity, e.g. a model."""
    h = hashlib.sha256()
    folder = Path(folder)
    if not folder.is_dir():  # a name (a hub id) is no identity: every such name would digest alike
        raise ConfigError(f"{folder} is not a folder: nothing to take a digest of")
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def module_digest(module) -> str:
    """A digest of a module's whole state (a frozen generator: a set's prior, genprior/synsets/latent.py),
    and of what it declares beyond its tensors (`identity()`, where it has one)."""
    state = tensor_digest(*module.state_dict().values())
    beyond = module.identity() if hasattr(module, "identity") else {}
    if not beyond:
        return state
    return digest({"state": state, **beyond})


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A digest of tensors' shapes, dtypes and bytes (e.g. a generator's state, the target images)."""
    import torch

    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def check_manifest(directory: Path, identity: dict, what: str, required: bool = False) -> None:
    """Refuse a folder whose manifest says it was built for something else (one line per key)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        if required:
            raise ConfigError(f"no {what} in {directory} (no {MANIFEST})")
        return
    try:
        have = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not readable ({type(e).__name__}); delete {directory} to rebuild it") from None
    diff = [f"{k}: built with {have.get(k)!r}, run needs {identity[k]!r}"
            for k in identity if have.get(k) != identity[k]]
    if diff:
        raise ConfigError(f"{what} {directory} does not match this run ({'; '.join(diff)}); "
                          f"point it elsewhere or delete it")


def open_manifest(directory: Path, identity: dict, what: str, extra: dict | None = None) -> None:
    """Create `directory` if needed, check its manifest, and (re)write it atomically with `extra`."""
    directory = Path(directory)
    check_buildable(directory, what)  # files without a manifest: made for who knows what, never adopted
    directory.mkdir(parents=True, exist_ok=True)
    check_manifest(directory, identity, what)
    write_json(directory / MANIFEST, dict(identity, **(extra or {})), sort_keys=True)


def check_buildable(directory: Path, what: str) -> None:
    """A folder without a manifest that holds files is not ours to fill (nor to delete); one with a
    manifest is complete (another process may have just finished it)."""
    # (a *.tmp is a write under way, e.g. another rank's manifest in open_manifest: not a file yet)
    if (directory.exists() and not (directory / MANIFEST).is_file()
            and any(not p.name.endswith(".tmp") for p in directory.iterdir())):
        raise ConfigError(f"{what} {directory} holds files but no {MANIFEST}; delete it to rebuild")


def build_once(directory: Path, identity: dict, build: Callable[[Path], None], what: str) -> Path:
    """`directory` holding what `build(folder)` writes for `identity`: reused if it exists and
    matches, else built in a temporary sibling and renamed into place."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        check_manifest(directory, identity, what)
        return directory
    check_buildable(directory, what)
    with staged_folder(directory) as tmp:
        build(tmp)
        sync_tree(tmp)  # on the disk before the manifest says so
        write_json(tmp / MANIFEST, identity, sort_keys=True)  # last: a folder with a manifest is complete
        try:
            tmp.replace(directory)  # POSIX: a rename onto an empty folder replaces it, onto a full one fails
            fsync_path(directory.parent)
        except OSError:  # another process finished the same artifact first: keep its folder
            if not (directory / MANIFEST).is_file():
                raise
    check_manifest(directory, identity, what, required=True)
    return directory
