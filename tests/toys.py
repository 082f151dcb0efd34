"""Tiny hand-checkable pieces for objective and synset tests."""
import torch
import torch.nn as nn

from genprior.data import DatasetInfo, Split


def toy_split(values_by_class: list[list[float]], flip_ok: bool = True) -> Split:
    """A Split of 1x1x1 images with the given pixel values per class."""
    images, labels = [], []
    for c, values in enumerate(values_by_class):
        images += values
        labels += [c] * len(values)
    info = DatasetInfo("toy", 1, 1, tuple(str(c) for c in range(len(values_by_class))), (0.0,), (1.0,), flip_ok)
    return Split(torch.tensor(images).view(-1, 1, 1, 1), torch.tensor(labels), info, "train")


class Flatten(nn.Module):
    """embed(x) = x flattened: DM's loss becomes a plain distance of pixel means."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(1, 1)

    def embed(self, x):
        return x.flatten(1)


class TwoWeights(nn.Module):
    """logits = (w0 * m, w1 * m) with m the image mean: a 2-parameter classifier."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return x.mean((1, 2, 3))[:, None] * self.w[None, :]


class AffineOnMean(nn.Module):
    """logits = W (m, 1) with m the image mean and W a 2x2 matrix starting at zero: one 2-D
    weight, so DC compares its two rows (one per class) and the gradients stay hand-checkable."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, 2))

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([m, torch.ones_like(m)], 1) @ self.weight.T


def image_split(num_classes: int = 3, resolution: int = 28, channels: int = 1, per_class: int = 4,
                seed: int = 0) -> Split:
    """A "toy" Split of random images, `per_class` of each class, class-major."""
    info = DatasetInfo("toy", channels, resolution, tuple(str(c) for c in range(num_classes)),
                       (0.5,) * channels, (0.25,) * channels, True)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.randn(len(labels), channels, resolution, resolution, generator=torch.Generator().manual_seed(seed))
    return Split(images, labels, info, "train")


def check_chunked_gradient(s, chunk: int, index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Assert that the constant-memory path (render without a graph, dL/dx on a leaf, push_grad
    chunk by chunk: genprior/run.py's distill_step) gives every parameter of synset `s` the
    gradient plain autograd through the whole set gives, and a nonzero one; returns them.
    The loss is nonlinear in the images, so every image's dL/dx depends on all the others."""
    shape = s.render(torch.arange(1)).shape[1:]
    weights = torch.randn(len(s), *shape, generator=torch.Generator().manual_seed(1))

    def loss_of(images):
        return ((images * weights).sum() ** 2) / 1e4 + (images ** 3 * weights).mean()

    loss_of(s.render(torch.arange(len(s)))).backward()
    plain = {n: p.grad.clone() for n, p in s.named_parameters() if p.grad is not None}
    s.zero_grad()
    images = s.render_all(chunk).requires_grad_(True)
    loss_of(images).backward()
    s.push_grad(images.grad, chunk)
    assert plain and set(plain) == {n for n, p in s.named_parameters() if p.grad is not None}
    for name, p in s.named_parameters():
        if name in plain:
            assert p.grad.abs().sum() > 0, name
            torch.testing.assert_close(p.grad, plain[name], rtol=1e-4, atol=1e-6)
    return plain
