"""Class-conditional StyleGAN2 in plain PyTorch (no custom CUDA ops), any b * 2**k resolution.

Generator: mapping network (z and a learned class embedding, each normalized, concatenated,
through an equalized-lr MLP at 0.01 lr) -> w; synthesis from a learned constant at b x b
(b in 4..7, so 28 px = 7 -> 14 -> 28, 32 px = 4 -> 8 -> 16 -> 32), one block per
resolution: an upsampling modulated conv (UPSAMPLES), modulated 3x3 conv, toRGB added to the
upsampled image so far (skip architecture). Every conv gets per-pixel noise with a
learned strength; "const" noise reads stored buffers so decoding is reproducible.

w+ indexing follows StyleGAN2: block 0 uses ws[0] (conv) and ws[1] (toRGB), block i > 0
uses ws[2i-1], ws[2i] (convs) and ws[2i+1] (toRGB); a toRGB shares its w with the next
block's first conv, so num_ws = 2 * num_layers.

F_n (GLaD) is the synthesis state after the first n blocks. With skip connections that
state is the feature map *and* the RGB image accumulated so far, so F_n holds both,
concatenated on channels: [N, C_n + channels, r_n, r_n]. That makes
`from_f(to_f(ws, n), ws, n)` exactly `decode(ws, kind="w+")`, and an optimized F_n can
change the coarse image too, not only the features.

Modulation/demodulation is applied to activations (scale inputs by the style, one shared
conv, scale outputs by the demodulation factor) rather than to per-image weights: the same
function as StyleGAN2's weight demodulation, but one dense conv instead of a grouped one,
which is much faster on CPU and for small batches.

Left out of the StyleGAN2 recipe (small data sets, CPU budgets): path-length
regularization, style mixing, the w_avg tracker (truncation uses `mean_w`, a class mean).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from generators.base import StyleGenerator
from generators.layers import (EqualConv, EqualLinear, base_and_blocks, channels_at, lrelu, minibatch_std,
                               normalize_2nd_moment, upsample2x)
from genprior.errors import ConfigError

NOISE_MODES = ("const", "random", "none")
# How a block's first conv doubles the resolution. "bilinear" is StyleGAN2's: its stride-2 transposed
# 3x3 conv followed by the [1, 3, 3, 1] low-pass at gain 4 equals a bilinear x2 (upsample2x) followed
# by a plain 3x3 conv, since both are linear and shift-equivariant. "transposed" is a 4x4 stride-2
# transposed conv with no low-pass: cheaper (computed at the low resolution), but nothing removes its
# 2-pixel period, the plaid in the shipped fashion_mnist_stylegan2.png, and its demodulation divides by
# all 16 taps of which each output sees 4, so activations halve at every block. The generators
# shipped before the option existed were trained with it (their JSON has no `upsample`: the default).
UPSAMPLES = ("transposed", "bilinear")


def check_noise_mode(mode: str) -> None:
    if mode not in NOISE_MODES:
        raise ConfigError(f"unknown noise_mode {mode!r}; valid: {', '.join(NOISE_MODES)}")


class Mapping(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_classes: int, layers: int, lr_mul: float = 0.01):
        super().__init__()
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None  # a learned per-class vector
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activate=True) for a, b in zip(dims, dims[1:])])
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            c = self.embed(F.one_hot(labels, self.num_classes).to(z.dtype))
            x = torch.cat([x, normalize_2nd_moment(c)], dim=1)
        return self.net(x)


class ModulatedConv(nn.Module):
    """Style-modulated conv; `demodulate` divides each output map by the norm of its modulated
    weights (StyleGAN2's demodulation: unit expected variance for a plain conv). `up` doubles the
    resolution first, the way UPSAMPLES names."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel: int, demodulate: bool = True,
                 up: str | None = None):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1: plain conv at init
        kernel = 4 if up == "transposed" else kernel  # 4x4 stride 2: every output sees 2x2 taps
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)
        self.demodulate, self.up = demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [N, in]
        weight = self.weight * self.scale
        x = x * styles[:, :, None, None]
        if self.up == "bilinear":  # style first, then the linear upsampling: the same as the other order
            x = upsample2x(x)
        if self.up == "transposed":  # computed at the low resolution: 16/36 of the cost of upsample-then-3x3
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1)
        else:
            x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if self.demodulate:  # 1/||w_o * s||: sum over in and taps of (w_oik s_i)^2
            d = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()
            x = x * d[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, res: int, up: str | None = None):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, w_dim, 3, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(1, 1, res, res))  # saved with the weights

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) * self.noise_strength
        return lrelu(x + self.bias[:, None, None])


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(in_channels, channels, w_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[:, None, None]


class SynthesisBlock(nn.Module):
    """One resolution. Block 0 starts from the learned constant and has one conv."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, res: int, channels: int, first: bool,
                 upsample: str):
        super().__init__()
        self.first = first
        if first:
            self.const = nn.Parameter(torch.randn(out_channels, res, res))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, res, up=upsample)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, res)
        self.torgb = ToRGB(out_channels, channels, w_dim)
        self.out_channels, self.res = out_channels, res

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str):
        """ws: this block's [N, 2 or 3, w_dim] (conv0, conv1, toRGB; no conv0 in block 0)."""
        if self.first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, -1])
        img = y if img is None else upsample2x(img) + y
        return x, img


class StyleGAN2(StyleGenerator):
    arch = "stylegan2"

    def __init__(self, resolution: int = 28, channels: int = 1, num_classes: int = 10, z_dim: int = 64,
                 w_dim: int = 128, mapping_layers: int = 4, channel_base: int = 1024, channel_max: int = 128,
                 noise_mode: str = "const", upsample: str = "transposed"):
        super().__init__()
        base, k = base_and_blocks(resolution)
        check_noise_mode(noise_mode)
        if upsample not in UPSAMPLES:
            raise ConfigError(f"unknown upsample {upsample!r}; valid: {', '.join(UPSAMPLES)}")
        self.config = dict(resolution=resolution, channels=channels, num_classes=num_classes, z_dim=z_dim,
                           w_dim=w_dim, mapping_layers=mapping_layers, channel_base=channel_base,
                           channel_max=channel_max, noise_mode=noise_mode, upsample=upsample)
        self.resolution, self.channels, self.num_classes = resolution, channels, num_classes
        self.z_dim, self.w_dim, self.noise_mode = z_dim, w_dim, noise_mode
        self.mapping = Mapping(z_dim, w_dim, num_classes, mapping_layers)
        resolutions = [base * 2 ** i for i in range(k + 1)]
        chans = [channels_at(r, channel_base, channel_max) for r in resolutions]
        self.blocks = nn.ModuleList(
            SynthesisBlock(chans[max(i - 1, 0)], chans[i], w_dim, r, channels, first=(i == 0), upsample=upsample)
            for i, r in enumerate(resolutions))
        self.num_layers = len(self.blocks)
        self.num_ws = 2 * self.num_layers

    # ---- protocol
    @property
    def latent_spec(self) -> dict:
        spec = {"z": (self.z_dim,), "w": (self.w_dim,), "w+": (self.num_ws, self.w_dim)}
        if self.num_layers >= 2:  # F_n needs a block on each side of the split
            spec["f"] = {n: self.f_shape(n) for n in range(1, self.num_layers)}
        return spec

    def identity(self) -> dict:
        """Its noise mode decides its images too (its JSON can change it without touching a
        tensor); the default, "const", adds nothing, so the shipped generators' digests stay."""
        return {} if self.noise_mode == "const" else {"noise_mode": self.noise_mode}

    def f_shape(self, n: int) -> tuple[int, int, int]:
        self.check_layer(n)
        b = self.blocks[n - 1]
        return (b.out_channels + self.channels, b.res, b.res)

    def map_w(self, z, labels):
        return self.mapping(z, labels)

    def decode(self, latents, labels=None, kind="z", noise_mode: str | None = None):
        return self.synthesize(self.as_ws(latents, labels, kind), 0, self.num_layers, None, None, noise_mode)[1]

    def to_f(self, ws, n, labels=None, noise_mode: str | None = None):
        self.check_layer(n)
        x, img = self.synthesize(self.as_ws(ws, labels, "w+"), 0, n, None, None, noise_mode)
        return torch.cat([x, img], dim=1)

    def f_first_row(self, n: int) -> int:
        self.check_layer(n)
        return 2 * n - 1  # block i reads rows 2i-1 .. 2i+1 (see synthesize)

    def from_f(self, f, ws, n, noise_mode: str | None = None):
        shape = self.f_shape(n)
        if tuple(f.shape[1:]) != shape:
            raise ConfigError(f"stylegan2: F_{n} must be [N, {', '.join(map(str, shape))}], got {list(f.shape)}")
        c = self.blocks[n - 1].out_channels
        return self.synthesize(self.as_ws(ws, None, "w+"), n, self.num_layers, f[:, :c], f[:, c:], noise_mode)[1]

    # ---- internals
    def as_ws(self, latents: torch.Tensor, labels, kind: str) -> torch.Tensor:
        """Any of z / w / w+ as w+ [N, num_ws, w_dim]; a plain w broadcasts to every layer."""
        self.check_kind(kind)
        if kind == "z":
            return self.map_w(latents, self.check_labels(labels, len(latents))).unsqueeze(1).repeat(1, self.num_ws, 1)
        if kind == "w" or (kind == "w+" and latents.ndim == 2):
            return latents.unsqueeze(1).expand(-1, self.num_ws, -1)
        if kind == "w+" and tuple(latents.shape[1:]) == (self.num_ws, self.w_dim):
            return latents
        raise ConfigError(f"stylegan2: {kind} latents must be [N, {self.num_ws}, {self.w_dim}] "
                          f"(or [N, {self.w_dim}]), got {list(latents.shape)}")

    def synthesize(self, ws, start, stop, x, img, noise_mode=None):
        noise_mode = noise_mode or self.noise_mode
        check_noise_mode(noise_mode)
        for i in range(start, stop):
            block_ws = ws[:, :2] if i == 0 else ws[:, 2 * i - 1: 2 * i + 2]
            x, img = self.blocks[i](x, img, block_ws, noise_mode)
        return x, img


class DiscriminatorBlock(nn.Module):
    """Residual: two 3x3 convs (the second halves the resolution) beside a 1x1 skip, summed / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv(in_channels, in_channels, 3, activate=True)
        self.conv1 = EqualConv(in_channels, out_channels, 3, activate=True, down=True)
        self.skip = EqualConv(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator down to b x b, minibatch std, then a projection head:
    score = <features, class embedding> / sqrt(dim) (plain linear score when unconditional)."""

    def __init__(self, resolution: int = 28, channels: int = 1, num_classes: int = 10, channel_base: int = 1024,
                 channel_max: int = 128, cmap_dim: int = 128, mbstd_group: int = 4):
        super().__init__()
        base, k = base_and_blocks(resolution)
        resolutions = [resolution // 2 ** i for i in range(k + 1)]  # high to low, ends at base
        chans = [channels_at(r, channel_base, channel_max) for r in resolutions]
        self.fromrgb = EqualConv(channels, chans[0], 1, activate=True)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(a, b) for a, b in zip(chans, chans[1:])])
        c = chans[-1]
        self.conv = EqualConv(c + 1, c, 3, activate=True)
        self.fc = EqualLinear(c * base * base, c, activate=True)
        self.out = EqualLinear(c, cmap_dim if num_classes else 1)
        self.embed = EqualLinear(num_classes, cmap_dim) if num_classes else None
        self.num_classes, self.mbstd_group, self.cmap_dim = num_classes, mbstd_group, cmap_dim

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.blocks(self.fromrgb(images))
        x = self.conv(minibatch_std(x, self.mbstd_group))
        x = self.out(self.fc(x.flatten(1)))
        if self.embed is None:
            return x.squeeze(1)
        cmap = self.embed(F.one_hot(labels, self.num_classes).to(x.dtype))
        return (x * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)
