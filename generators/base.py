"""The generator protocol every synset backend talks to.

A generator maps latents to images in [-1, 1], shape [N, channels, resolution, resolution].
Latent kinds (which ones a generator has is its `latent_spec`):

    z    [N, z_dim]          the input noise; class-conditional generators also take labels
                             (a diffusion model's z is its sampler's initial noise z_T, [N, C, H, W])
    w    [N, w_dim]          style-based only: z (+ class) through the mapping network
    w+   [N, num_ws, w_dim]  style-based only: one w per synthesis layer (GLaD's W+)
    f    F_n                 style-based only: the synthesis state after block n (GLaD's F_n);
                             made by `to_f(ws, n)`, turned into images by `from_f(f, ws, n)`

Class information enters through the mapping network, so w / w+ / f already carry the
class: `decode` needs labels only for kind "z".

Range: DCGAN-style generators end in tanh. Style-based ones (native StyleGAN2, NVlabs)
end in a linear toRGB, as in NVlabs' code: trained toward [-1, 1] but not squashed, so
values slightly outside occur; clamp for display, and decide in the synset whether to clamp
before an objective (a clamp stops gradients to out-of-range pixels).

Decoding must be a pure function of (latents, labels): synsets re-render the same
latents twice per step (no-grad pass, then the chunked backward pass: docs/design.md,
"The constant-memory backward"), so per-layer noise is read from stored buffers ("const"
noise) and BatchNorm runs on its running statistics. `frozen(g)` puts a generator in that state.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from genprior.errors import ConfigError

STYLE_KINDS = ("z", "w", "w+")


class Generator(nn.Module):
    """Any family of generators (GANs, diffusion models): subclasses set resolution,
    channels, num_classes (0 = unconditional) and implement latent_spec / sample_latents /
    decode. Style-based GANs derive from StyleGenerator, which adds W, W+, F_n and truncation."""

    arch = "base"  # the name GENERATORS knows it by (generators.io)
    resolution: int
    channels: int
    num_classes: int

    # ---- what every generator defines
    @property
    def latent_spec(self) -> dict:
        """Kind -> latent shape per image (without the batch dimension); "f" maps n -> shape."""
        raise NotImplementedError  # abstract

    def sample_latents(self, labels: torch.Tensor, kind: str = "z",
                       generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError  # abstract

    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None = None, kind: str = "z") -> torch.Tensor:
        raise NotImplementedError  # abstract

    def forward(self, latents, labels=None, kind="z"):  # a generator called is a generator decoding
        return self.decode(latents, labels, kind)

    def identity(self) -> dict:
        """What decides its images beyond its state's tensors (none here; a diffusion model's
        sampler schedule): part of a set's prior digest (genprior/artifacts.py module_digest)."""
        return {}

    # ---- shared checks: one line naming what is valid
    @property
    def latent_kinds(self) -> tuple[str, ...]:
        return tuple(self.latent_spec)

    def check_kind(self, kind: str) -> None:
        if kind not in self.latent_spec:
            raise ConfigError(f"{self.arch} generator has no latent kind {kind!r}; "
                              f"valid: {', '.join(self.latent_kinds)}")

    def check_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Labels for n images: required (and in range) for conditional generators, ignored otherwise."""
        if not self.num_classes:
            return None
        if labels is None:
            raise ConfigError(f"{self.arch} generator is class-conditional ({self.num_classes} classes): pass labels")
        labels = torch.as_tensor(labels, dtype=torch.long, device=self._device())
        if labels.shape != (n,):
            raise ConfigError(f"{self.arch} generator: expected {n} labels, got shape {list(labels.shape)}")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ConfigError(f"{self.arch} generator: labels must be in 0..{self.num_classes - 1}, "
                              f"got {int(labels.min())}..{int(labels.max())}")
        return labels

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


class StyleGenerator(Generator):
    """Style-based generators (native StyleGAN2, NVlabs pickles): z -> w through a
    class-conditional mapping network, one w per synthesis layer, and a synthesis network
    of `num_layers` blocks that can be split after block n (GLaD's F_n). Subclasses set
    z_dim, w_dim, num_ws, num_layers and implement `map_w`, `to_f`, `from_f`, `f_shape`;
    sampling, truncation and class means are the same for all."""

    z_dim: int
    w_dim: int
    num_ws: int
    num_layers: int  # synthesis blocks; F_n exists for n in 1..num_layers-1

    def map_w(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z [N, z_dim] (+ checked labels) -> w [N, w_dim]."""
        raise NotImplementedError  # abstract

    def to_f(self, ws: torch.Tensor, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """F_n: the synthesis state after block n for w+ latents ws."""
        raise NotImplementedError  # abstract

    def from_f(self, f: torch.Tensor, ws: torch.Tensor, n: int) -> torch.Tensor:
        """Images from F_n and the w+ rows of the blocks after n."""
        raise NotImplementedError  # abstract

    def f_shape(self, n: int) -> tuple[int, ...]:
        raise NotImplementedError  # abstract

    def f_first_row(self, n: int) -> int:
        """The first w+ row `from_f(f, ws, n)` reads: the rows before it shaped F_n and are
        not read again, so an F_n set does not store them (genprior/synsets/gan.py storage)."""
        raise NotImplementedError  # abstract

    def check_layer(self, n: int) -> None:
        if self.num_layers < 2:
            raise ConfigError(f"{self.arch} generator has no F_n latents (no synthesis blocks to split); "
                              f"valid latent kinds: {', '.join(self.latent_kinds)}")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n < self.num_layers:
            raise ConfigError(f"{self.arch} generator: F layer n={n!r} out of range; "
                              f"valid: 1..{self.num_layers - 1}")

    @torch.no_grad()  # initial values, not part of any graph
    def sample_latents(self, labels, kind="z", generator=None, truncation=1.0):
        if kind not in STYLE_KINDS:
            self.check_kind(kind)  # unknown kinds: the generic message
            raise ConfigError(f"{self.arch}: sample F_n latents as to_f(sample_latents(labels, 'w+'), n, labels)")
        n = len(labels)
        labels = self.check_labels(labels, n)
        z = randn((n, self.z_dim), generator, self._device())
        if kind == "z":
            if truncation != 1.0:
                raise ConfigError(f"{self.arch}: truncation applies to w / w+ latents; sample kind 'w' or 'w+'")
            return z
        w = self.map_w(z, labels)
        if truncation != 1.0:  # toward the class mean: psi < 1 trades diversity for typicality
            mean = self.mean_w(labels)
            w = mean + truncation * (w - mean)
        return w if kind == "w" else w.unsqueeze(1).repeat(1, self.num_ws, 1)

    @torch.no_grad()
    def mean_w(self, labels, n: int = 1000) -> torch.Tensor:
        """The mean w of each label's class over n fixed z draws: [len(labels), w_dim]."""
        count = len(labels)
        labels = self.check_labels(labels, count)
        z = randn((n, self.z_dim), torch.Generator().manual_seed(0), self._device())
        if labels is None:
            return self.map_w(z, None).mean(0).expand(count, -1).clone()
        classes, inverse = torch.unique(labels, return_inverse=True)
        means = torch.stack([self.map_w(z, c.repeat(n)).mean(0) for c in classes])
        return means[inverse]


def frozen(g: nn.Module) -> nn.Module:
    """A generator as a fixed prior: eval mode (BatchNorm on running stats), no parameter grads.
    Gradients still flow through it to the latents."""
    return g.eval().requires_grad_(False)


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """Normal draws on the generator's device (CPU generators draw on CPU, then move, so
    a seed gives the same latents on every device)."""
    gen_device = generator.device if generator is not None else torch.device(device)
    return torch.randn(shape, generator=generator, device=gen_device).to(device)
