"""Image metrics of a synthetic set: FID/KID against a real split, and diversity within classes.

    python -m genprior.metrics runs/fashion_mnist/pixel-dm-ipc10-seed0          # into its metrics.json
    python -m genprior.metrics set.safetensors --space /models/dinov2-small     # + DINOv2 space
    python -m genprior.metrics some/image_folder dataset=fashion_mnist --out m.json

Like the accuracy protocol, it judges files (a run directory, a saved set, a folder of
images), never synsets, so sets from any tool are measured the same way.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from genprior.data import dataset_info
from genprior.errors import ConfigError
from genprior.metrics.diversity import feature_diversity, lpips_diversity
from genprior.metrics.features import Encoder, Inception, Unavailable, feature_space
from genprior.metrics.fid import MIN_FID, fid_kid, fid_kid_by_class, reference_features

__all__ = ["image_metrics", "fid_kid", "fid_kid_by_class", "reference_features", "feature_diversity",
           "lpips_diversity", "feature_space", "summary_lines", "Inception", "Encoder", "Unavailable", "MIN_FID"]


def image_metrics(unit: torch.Tensor, labels: torch.Tensor | None, dataset: str, split: str = "test",
                  spaces: tuple[str, ...] = ("inception",), lpips: bool = True, root: str | None = None,
                  device: str = "cpu", inception: str | None = None, limit: int | None = None,
                  min_fid: int = MIN_FID) -> dict:
    """Everything about the images [N, C, H, W] in [0, 1]; `labels` None = one unlabeled pool.

    Inception is required (a missing network raises Unavailable, one line); any other
    feature space, and LPIPS, becomes an {"unavailable": why} entry when its weights are absent.
    """
    if len(unit) == 0:
        raise ConfigError("no images to measure")
    t0 = time.time()
    # the real split at the images' own resolution: a set distilled at 32 px from 128-px data is
    # measured against the 32-px data it was distilled from, not penalized for the resizing
    # (not above the native size: Inception resizes to 299 anyway, and an upsampled split only costs memory)
    resolution = min(unit.shape[-1], dataset_info(dataset).resolution)
    out: dict = {"reference": {"dataset": dataset, "split": split, "limit": limit, "resolution": resolution},
                 "n": len(unit)}
    for spec in spaces:
        try:
            space = feature_space(spec, device, inception)
        except Unavailable as e:
            if spec == "inception":
                raise
            out[spec] = {"unavailable": str(e)}
            continue
        t = time.time()
        features = space(unit)
        seconds = time.time() - t
        ref, ref_labels = reference_features(space, dataset, split, root, resolution, limit=limit)
        if labels is None:
            entry = {"overall": fid_kid(features, ref, min_fid)}
            pooled = np.zeros(len(features), np.int64)
            entry["diversity"] = feature_diversity(features, pooled)
            entry["reference_diversity"] = feature_diversity(ref, np.zeros(len(ref), np.int64))
        else:
            lab = labels.cpu().numpy()
            entry = fid_kid_by_class(features, lab, ref, ref_labels, min_fid)
            entry["diversity"] = feature_diversity(features, lab)
            entry["reference_diversity"] = feature_diversity(ref, ref_labels)
        entry["key"] = space.key
        entry["seconds_per_1000_images"] = round(1000 * seconds / len(unit), 1)
        out[space.name] = entry
    if lpips and labels is not None:
        out["lpips"] = lpips_diversity(unit, labels.cpu(), device)
    elif lpips:
        out["lpips"] = lpips_diversity(unit, torch.zeros(len(unit), dtype=torch.long), device)
    out["wall_s"] = round(time.time() - t0, 1)
    return out


def summary_lines(m: dict) -> list[str]:
    lines = []
    for name, entry in m.items():
        if not isinstance(entry, dict) or name == "reference":
            continue
        if "unavailable" in entry:
            lines.append(f"{name}: unavailable: {entry['unavailable']}")
        elif "overall" in entry:
            o = entry["overall"]
            fid = "n/a" if o["fid"] is None else f"{o['fid']:.2f}"
            kid = "n/a" if o["kid"] is None else f"{o['kid']:.4f}"
            div = entry["diversity"]["mean"]
            lines.append(f"{name}: FID {fid}, KID {kid} (n={o['n']} vs {o['n_ref']}), within-class distance "
                         f"{'n/a' if div is None else f'{div:.2f}'} (real {_number(entry['reference_diversity']['mean'])})")
        elif name == "lpips" and entry.get("mean") is not None:
            lines.append(f"lpips: within-class {entry['mean']:.4f}")
    return lines


def _number(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
