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
