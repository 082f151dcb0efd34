"""Building blocks shared by the native GANs: base-size rule, equalized-lr layers, upsampling.

Equalized learning rate (StyleGAN): weights are stored N(0, 1) and scaled by
1/sqrt(fan_in) at every call, so Adam's per-parameter step size means the same
thing for every layer whatever its fan-in. `lr_mul` additionally shrinks the
stored values (the mapping network learns 100x slower, as in StyleGAN2).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from genprior.errors import ConfigError

LRELU_GAIN = math.sqrt(2.0)  # keeps activations' second moment ~1 through leaky ReLU(0.2)


def base_and_blocks(resolution: int) -> tuple[int, int]:
    """(b, k) with resolution = b * 2**k and b in 4..7: 28 = 7*4, 32 = 4*8, 48 = 6*8, 64 = 4*16.
    The synthesis starts at b x b and doubles k times."""
    r, k = int(resolution), 0
    while r > 7 and r % 2 == 0:
        r, k = r // 2, k + 1
    if not 4 <= r <= 7:
        raise ConfigError(f"generator resolution must be b * 2**k with b in 4..7 (e.g. 28, 32, 48, 64, 128), "
                          f"got {resolution}")
    return r, k


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature channels at a resolution: wider at low resolution, capped (StyleGAN2's rule)."""
    return max(1, min(channel_base // res, channel_max))


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    # bilinear x2 with half-pixel centres is exactly the separable [1, 3, 3, 1]/4 FIR
    # StyleGAN2 upsamples with (edges replicated instead of zero-padded), and it is one
    # fast native op on every device
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_features), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(x) if self.activate else x


class EqualConv(nn.Module):
    """Equalized-lr conv for discriminators; `down` averages 2x2 *before* the conv, so the conv
    runs at the low resolution (a quarter of the cost; StyleGAN2 blurs then strides, alike)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True,
                 activate: bool = False, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.activate, self.down = 1 / math.sqrt(in_channels * kernel * kernel), activate, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return lrelu(x) if self.activate else x


def minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one channel: the mean std of features across a group of images (StyleGAN's
    guard against mode collapse). Groups of gcd(batch, group) images, strided as StyleGAN lays
    them out: item i is in group i mod (batch / gcd)."""
    n, c, h, w = x.shape
    g = math.gcd(n, group)
    y = x.reshape(g, n // g, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # [n/g, c, h, w]
    y = y.mean(dim=(1, 2, 3)).reshape(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y], dim=1)
