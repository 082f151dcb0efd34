"""Diversity within a class: how different a class's synthetic images are from each other.

A distilled set can score a fine FID per image yet spend its 10 images on one mode. The
mean pairwise distance within each class shows that. Two measures:

- feature distance: mean pairwise Euclidean distance of the images' features (Inception
  or an encoder), always available; the same measure on the real split is the yardstick;
- LPIPS: mean pairwise LPIPS, only with the real AlexNet backbone. The lpips wheel ships
  only its linear heads, and the backbone comes from torchvision's download. Where that
  file is missing the entry says "unavailable" and why: LPIPS on a random backbone would
  be a number without meaning, so it is never computed silently.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from genprior.errors import one_line
from genprior.metrics.features import Unavailable

LPIPS_MIN_SIZE = 64  # AlexNet's strides leave nothing of a 28-px image; LPIPS sees it upsampled


def pairwise_mean(features: np.ndarray) -> float | None:
    """Mean Euclidean distance over all unordered pairs; None for fewer than 2 items."""
    n = len(features)
    if n < 2:
        return None
    x = torch.from_numpy(np.asarray(features, np.float64))
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def feature_diversity(features: np.ndarray, labels: np.ndarray, max_per_class: int = 1000) -> dict:
    """Per-class mean pairwise feature distance (first `max_per_class` of each class) and their mean."""
    per_class = {str(c): pairwise_mean(features[labels == c][:max_per_class]) for c in sorted(set(labels.tolist()))}
    values = [v for v in per_class.values() if v is not None]
    return {"mean": float(np.mean(values)) if values else None, "per_class": per_class}


def alexnet_weights_path() -> Path:
    """Where torchvision looks for (and would download) the AlexNet weights lpips needs."""
    from torchvision.models import AlexNet_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name


def lpips_distance(device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """LPIPS (AlexNet, frozen) between two batches of [-1, 1] images, one distance per pair,
    gradients flowing to the images (the inversion's perceptual loss, genprior/synsets/invert.py).
    Raises Unavailable, the reason in one line, where the real backbone is not on this machine."""
    weights = alexnet_weights_path()
    if not weights.is_file():
        raise Unavailable(f"LPIPS needs torchvision's ImageNet AlexNet weights at {weights}; they are not "
                          "there and cannot be downloaded offline (copy the file there to use LPIPS)")
    import lpips

    try:
        net = lpips.LPIPS(net="alex", pretrained=True, verbose=False).eval().requires_grad_(False).to(device)
    except Exception as e:  # a corrupt or foreign file at that path
        raise Unavailable(f"LPIPS could not load its backbone from {weights}: "
                          f"{type(e).__name__}: {one_line(e)}") from None

    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return net(lpips_input(x), lpips_input(y)).flatten()
    return distance


def lpips_input(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as LPIPS takes them: three channels (grayscale repeated), at least
    LPIPS_MIN_SIZE wide (bilinear). Images already so pass through unchanged, so a caller may
    prepare a pool once and pair it up afterwards."""
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if x.shape[-1] < LPIPS_MIN_SIZE:
        x = F.interpolate(x, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
    return x


def lpips_diversity(unit: torch.Tensor, labels: torch.Tensor, device: str = "cpu", batch: int = 256,
                    max_per_class: int = 200) -> dict:
    """Per-class mean pairwise LPIPS (AlexNet) over the first `max_per_class` images of each
    class (200: ~20k pairs a class; a 5000-image pool would be 12.5M), or {"unavailable": why}."""
    try:
        distance = lpips_distance(device)
    except Unavailable as e:
        return {"unavailable": str(e)}
    # prepared once on the CPU (each image then meets ~200 others); `distance` leaves it as it is
    x = lpips_input(unit.detach().float().cpu().clamp(0, 1) * 2 - 1)
    per_class = {}
    with torch.no_grad():
        for c in sorted(set(labels.tolist())):
            xc = x[labels == c][:max_per_class]
            i, j = torch.triu_indices(len(xc), len(xc), offset=1)
            if len(i) == 0:
                per_class[str(c)] = None
                continue
            d = torch.cat([distance(xc[i[k:k + batch]].to(device), xc[j[k:k + batch]].to(device)).cpu()
                           for k in range(0, len(i), batch)])
            per_class[str(c)] = float(d.mean())
    values = [v for v in per_class.values() if v is not None]
    return {"mean": float(np.mean(values)) if values else None, "per_class": per_class, "net": "alex",
            "upsampled_to": max(LPIPS_MIN_SIZE, x.shape[-1]), "max_per_class": max_per_class}
