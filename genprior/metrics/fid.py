"""FID and KID of a set of images against a real split, through clean-fid's own functions.

Reference features of a real split are computed once and cached (features, not just
mean and covariance: KID and per-class FID need them) under
<cache>/metrics/<feature-space key>/<dataset>-<split>-<res>px-<n>-<data digest>.npz.
Everything that decides them is in the path: the exact weights (their hash), the split's
pixels (a hash of the tensor), its resolution and the subset size. A stale file is never
read; a changed split or network simply misses the cache.

FID on a few hundred images is strongly biased upward (it is a plug-in estimate of a
2048-d covariance), so KID, which is unbiased, is always reported beside it, with n.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from genprior.data import cache_dir, load_split, to_unit
from genprior.errors import ConfigError
from genprior.files import write_bytes
from genprior.progress import progress
from genprior.rng import seeded

MIN_FID = 10  # below this many images the covariance estimate is too crude to mean anything
KID_SUBSETS = 100
BLOCK = 500  # reference features are saved every BLOCK images, so an interrupted pass resumes


def reference_features(space, dataset: str, split: str = "test", root: str | None = None,
                       resolution: int | None = None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], labels [N]) of a real split in `space`, cached on disk.

    `limit`: a fixed random subset of that many images (seed 0), for quick checks.
    """
    s = load_split(dataset, split, root, resolution)
    index = torch.arange(len(s))
    if limit is not None and limit < len(s):
        index = torch.randperm(len(s), generator=seeded(0, len(s), limit))[:limit].sort().values
    images, labels = s.images[index], s.labels[index]
    h = hashlib.sha256(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    res = images.shape[-1]
    path = cache_dir() / "metrics" / space.key / f"{dataset}-{split}-{res}px-{len(index)}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["features"], z["labels"]

    # Resume a pass that was interrupted: blocks done so far sit in a .partial.npz.
    partial = path.with_suffix(".partial.npz")
    done = []
    if partial.is_file():
        with np.load(partial) as z:
            done.append(z["features"])
    start = len(done[0]) if done else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with progress(total=len(index), initial=start, desc=f"{space.name} features of {dataset} {split}",
              unit="img", leave=False) as bar:
        for i in range(start, len(index), BLOCK):
            unit = to_unit(images[i:i + BLOCK], dataset, "normalized", root)
            done.append(space(unit).astype(np.float32))
            _save_npz(partial, features=np.concatenate(done))
            done = [np.concatenate(done)]
            bar.update(len(unit))
    features = np.concatenate(done) if done else np.zeros((0, 1), np.float32)
    _save_npz(path, features=features, labels=labels.numpy())
    partial.unlink(missing_ok=True)
    return features, labels.numpy()


def _save_npz(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())  # atomic, under a name of this process


def fid_kid(features: np.ndarray, reference: np.ndarray, min_fid: int = MIN_FID, seed: int = 0) -> dict:
    """FID and KID of `features` against `reference` (clean-fid's frechet_distance and
    kernel_distance). A metric the sample is too small for is None with the reason beside it."""
    from cleanfid.fid import frechet_distance, kernel_distance

    n, n_ref = len(features), len(reference)
    out = {"n": n, "n_ref": n_ref, "fid": None, "kid": None}
    if n >= min_fid and n_ref >= min_fid:
        mu, sigma = features.mean(0), np.cov(features, rowvar=False)
        mu_r, sigma_r = reference.mean(0), np.cov(reference, rowvar=False)
        with warnings.catch_warnings():  # clean-fid passes scipy an argument scipy now deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                out["fid"] = float(frechet_distance(mu, sigma, mu_r, sigma_r))
            except ValueError as e:  # sqrtm of a near-singular product (a few samples in 2048 dims) went complex
                out["fid_unavailable"] = f"the covariances' square root is not real ({e}); a larger sample fixes it"
    else:
        out["fid_unavailable"] = f"{_count(min(n, n_ref))}; FID needs at least {min_fid}"
    if min(n, n_ref) >= 2:
        # kernel_distance draws its subsets from numpy's global RNG: seed it, and put it back.
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            out["kid"] = float(kernel_distance(features.astype(np.float64), reference.astype(np.float64),
                                               num_subsets=KID_SUBSETS))
        finally:
            np.random.set_state(state)
    else:
        out["kid_unavailable"] = f"{_count(min(n, n_ref))}; KID needs at least 2"
    return out


def _count(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def fid_kid_by_class(features: np.ndarray, labels: np.ndarray, reference: np.ndarray, ref_labels: np.ndarray,
                     min_fid: int = MIN_FID) -> dict:
    """Overall and per-class (each class's images against the same class of the split)."""
    if len(features) == 0:
        raise ConfigError("no images to measure")
    per_class = {str(c): fid_kid(features[labels == c], reference[ref_labels == c], min_fid)
                 for c in sorted(set(labels.tolist()))}
    return {"overall": fid_kid(features, reference, min_fid), "per_class": per_class}
