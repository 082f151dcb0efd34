"""Augmentations used inside distillation: DSA and ZCA whitening.

DSA (Differentiable Siamese Augmentation, Zhao & Bilen 2021): every op is plain
tensor math or affine_grid + grid_sample, so gradients flow back to synthetic
images, and a seed fixes the transform so a real batch and a synthetic batch can
receive the *same* augmentation ("siamese").

ZCA: the whitening MTT applies to the normalized train split (eps 0.1).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from genprior.errors import ConfigError

DSA_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")

# magnitudes from the DSA paper's defaults
BRIGHTNESS = 0.5  # add uniform(-0.5, 0.5)
SATURATION = 2.0  # saturation factor uniform(0, 2)
CONTRAST = 0.5  # contrast factor uniform(0.5, 1.5)
CROP = 0.125  # max shift, as a fraction of the side
CUTOUT = 0.5  # side of the zeroed square, as a fraction of the side
SCALE = 1.2  # factors in [1/1.2, 1.2]
ROTATE = 15.0  # degrees


# --- ops -----------------------------------------------------------------------
# Each op takes x [N, C, H, W] and r: uniforms in [0, 1) drawn on CPU as float64,
# shape [n, k] with n == N (per sample) or n == 1 (siamese, broadcast to all).
# Everything that depends on r is computed on CPU and only then moved to x's
# device, so a given seed means the same transform on any device.


def _per_sample(v: Tensor, x: Tensor) -> Tensor:
    """[n] CPU values -> [n, 1, 1, 1] on x's device/dtype, broadcastable over x."""
    return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _warp(x: Tensor, theta: Tensor) -> Tensor:
    """Resample x through per-sample 2x3 affine maps (output coords -> input coords)."""
    theta = theta.to(device=x.device, dtype=x.dtype).expand(x.shape[0], 2, 3)
    # align_corners=False in both calls: normalized coords span pixel edges, so an
    # identity theta (or a whole-pixel shift) lands exactly on pixel centres
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _color(x: Tensor, r: Tensor) -> Tensor:
    x = x + _per_sample((r[:, 0] - 0.5) * 2 * BRIGHTNESS, x)
    # saturation: lerp each pixel away from / towards its grey value (channel mean);
    # with one channel x == mean, so it is a no-op by construction
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * _per_sample(r[:, 1] * SATURATION, x) + m
    # contrast: lerp from the whole image's mean
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * _per_sample(r[:, 2] * 2 * CONTRAST + 1 - CONTRAST, x) + m


def _crop(x: Tensor, r: Tensor) -> Tensor:
    # whole-pixel shifts in [-s, s] like the original (pad-and-crop), so no blur;
    # a shift of k pixels is 2k/size in normalized coords
    H, W = x.shape[-2:]
    sy, sx = int(H * CROP + 0.5), int(W * CROP + 0.5)
    dy = torch.floor(r[:, 0] * (2 * sy + 1)) - sy
    dx = torch.floor(r[:, 1] * (2 * sx + 1)) - sx
    theta = torch.zeros(r.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = dx * 2 / W
    theta[:, 1, 2] = dy * 2 / H
    return _warp(x, theta)


def _cutout(x: Tensor, r: Tensor) -> Tensor:
    # square centred anywhere in the image (clipped at the border), like the original
    H, W = x.shape[-2:]
    ch, cw = int(H * CUTOUT + 0.5), int(W * CUTOUT + 0.5)
    y0 = (torch.floor(r[:, 0] * H).long() - ch // 2).to(x.device).view(-1, 1, 1)
    x0 = (torch.floor(r[:, 1] * W).long() - cw // 2).to(x.device).view(-1, 1, 1)
    # integer compares: the mask is exact on any device
    ys = torch.arange(H, device=x.device).view(1, H, 1)
    xs = torch.arange(W, device=x.device).view(1, 1, W)
    hole = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)  # multiply, so the gradient is the mask


def _flip(x: Tensor, r: Tensor) -> Tensor:
    flip = (r[:, 0] < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def _scale(x: Tensor, r: Tensor) -> Tensor:
    lo = 1 / SCALE
    theta = torch.zeros(r.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = lo + r[:, 0] * (SCALE - lo)  # x and y drawn independently
    theta[:, 1, 1] = lo + r[:, 1] * (SCALE - lo)
    return _warp(x, theta)


def _rotate(x: Tensor, r: Tensor) -> Tensor:
    H, W = x.shape[-2:]
    a = (r[:, 0] * 2 - 1) * math.radians(ROTATE)
    cos, sin = torch.cos(a), torch.sin(a)
    # a rotation in pixel space, written in normalized coords: x_n = 2 x_px / W and
    # y_n = 2 y_px / H, so the off-diagonals pick up the aspect ratio (1 when square)
    theta = torch.zeros(r.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * H / W
    theta[:, 1, 0], theta[:, 1, 1] = sin * W / H, cos
    return _warp(x, theta)


# name -> (fn, how many uniforms one sample needs)
_OPS = {
    "color": (_color, 3),
    "crop": (_crop, 2),
    "cutout": (_cutout, 2),
    "flip": (_flip, 1),
    "scale": (_scale, 2),
    "rotate": (_rotate, 1),
}
assert tuple(_OPS) == DSA_OPS


class DSA:
    """Seeded, differentiable augmentation; one op group per call (the reference code's "S" mode:
    one randomly chosen op per call; its "M" mode applies every op).

    dsa(x, seed) draws everything from a CPU torch.Generator seeded with `seed` and
    never touches the global RNG. Per-sample parameters come out of the stream in
    sample order (k uniforms each), so sample i gets the same transform in any batch
    with at least i+1 samples. siamese=True draws one parameter set for the whole
    batch: the same seed then transforms every image of any batch identically.
    """

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", flip: bool = True):
        names = [] if strategy.strip().lower() in ("", "none") else strategy.split("_")
        names = [n.strip().lower() for n in names if n.strip()]
        bad = [n for n in names if n not in _OPS]
        if bad:
            raise ConfigError(f"unknown DSA op(s) {bad} in strategy {strategy!r}; valid ops: {', '.join(DSA_OPS)}")
        if not flip:  # digits: a mirrored 2 is not a 2
            names = [n for n in names if n != "flip"]
        self.ops = tuple(dict.fromkeys(names))  # dedupe, keep order

    def __call__(self, x: Tensor, seed: int, siamese: bool = False) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"DSA expects images [N, C, H, W], got shape {tuple(x.shape)}")
        if not self.ops:
            return x
        g = torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)  # CPU, private
        name = self.ops[int(torch.randint(len(self.ops), (1,), generator=g))]
        fn, k = _OPS[name]
        # CPU uniform_ fills serially, so row i of an [n, k] draw does not depend on n
        r = torch.rand(1 if siamese else x.shape[0], k, generator=g, dtype=torch.float64)
        return fn(x, r)

    def __repr__(self):
        return f"DSA({'_'.join(self.ops) or 'none'!r})"


def dsa_or_none(strategy: str | None, flip: bool = True) -> DSA | None:
    """DSA(strategy), or None where the strategy names no augmentation (null, "", "none"), so
    that a caller skips the augmentation seeds too."""
    if strategy is None or strategy.strip().lower() in ("", "none"):
        return None
    return DSA(strategy, flip=flip)


# --- ZCA -----------------------------------------------------------------------


class ZCA(nn.Module):
    """ZCA whitening z = (x - mean) W with W = U diag(1/sqrt(S + eps)) U^T.

    Unlike PCA whitening, W is symmetric, so whitened images stay in pixel space
    and still look like (edge-enhanced) images. mean, W, W_inv are float32 buffers:
    state_dict() round-trips and can be saved with safetensors. The image shape is
    taken from the input, so only D = C*H*W is fixed.
    """

    def __init__(self, dim: int):
        super().__init__()
        # identity until fit / load_state_dict fills it
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("W", torch.eye(dim))
        self.register_buffer("W_inv", torch.eye(dim))

    @classmethod
    @torch.no_grad()
    def fit(cls, images: Tensor, eps: float = 0.1, chunk: int = 4096) -> "ZCA":
        X = images.flatten(1)
        N, D = X.shape
        if N < 2:
            raise ValueError("ZCA.fit needs at least 2 samples")
        # float64 accumulation in chunks: a 50k x 3072 set never exists in float64 at once
        mean = torch.zeros(D, dtype=torch.float64, device=X.device)
        for i in range(0, N, chunk):
            mean += X[i : i + chunk].double().sum(0)
        mean /= N
        cov = torch.zeros(D, D, dtype=torch.float64, device=X.device)
        for i in range(0, N, chunk):
            xc = X[i : i + chunk].double() - mean
            cov += xc.T @ xc
        cov /= N - 1
        S, U = torch.linalg.eigh(cov)
        S = S.clamp(min=0)  # round-off can make the tiniest eigenvalues slightly negative
        zca = cls(D)
        zca.mean.copy_(mean)
        zca.W.copy_((U * (S + eps).rsqrt()) @ U.T)  # U diag(.) U^T without building diag
        zca.W_inv.copy_((U * (S + eps).sqrt()) @ U.T)
        return zca.to(images.device)

    @classmethod
    def from_state_dict(cls, state: dict) -> "ZCA":
        zca = cls(state["mean"].numel())
        zca.load_state_dict(state)
        return zca

    def forward(self, x: Tensor) -> Tensor:
        z = (x.flatten(1).to(self.W.dtype) - self.mean) @ self.W
        return z.view(x.shape).to(x.dtype)

    def inverse(self, z: Tensor) -> Tensor:
        x = z.flatten(1).to(self.W_inv.dtype) @ self.W_inv + self.mean
        return x.view(z.shape).to(z.dtype)
