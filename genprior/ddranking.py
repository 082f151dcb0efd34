"""DD-Ranking's scores from genprior's own protocol runs, and a set exported as DD-Ranking reads one.

DD-Ranking (NUS-HPC-AI-Lab/DD-Ranking) argues that test accuracy alone rewards soft labels and
heavy augmentation more than the images, and scores a set by what the images add:

    HLR = acc(full data) - acc(set)              hard-label recovery: the gap left to close
    IOR = acc(set) - acc(random real subset)     improvement over random
    LRS = (exp(l * IOR - (1 - l) * HLR) - 1/e) / (e - 1/e)                label-robust score
    ARS = (exp(l * IOR(with aug) + (1 - l) * IOR(without aug)) - 1/e) / (e - 1/e)
                                                 augmentation-robust score, l = 0.5 for both

Both map [-1, 1] to [0, 1] only when the accuracies are fractions; DD-Ranking v0.2.0 feeds
percentages into exp, which saturates (IOR = 20 points gives exp(10)). genprior computes them
on fractions, per protocol run (run r of the set against run r of the random subsets, as
DD-Ranking pairs its evaluations), and reports mean +- std over runs. genprior's sets carry
hard labels, so acc(set) is the hard-label accuracy DD-Ranking asks for.

The export: `images.pt` (class-major float tensor, normalized as the test set: the set's own
space), `labels.pt` (int64), `lr.pt` (the learned lr if the set has one, else the protocol's).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from genprior.files import write_torch

LAMBDA = 0.5  # DD-Ranking's default weight of IOR against HLR (and of with- against without-augmentation)
_LOW, _SPAN = math.exp(-1), math.exp(1) - math.exp(-1)


def _squash(x: float) -> float:
    return (math.exp(x) - _LOW) / _SPAN


def label_robust(synthetic: list[float], random_real: list[float], full_data: float, lam: float = LAMBDA) -> list[dict]:
    """Per run: HLR, IOR and LRS from accuracies in percent (as metrics.json holds them)."""
    out = []
    for syn, rnd in zip(synthetic, random_real, strict=True):
        hlr, ior = (full_data - syn) / 100, (syn - rnd) / 100
        out.append({"hlr": hlr, "ior": ior, "lrs": _squash(lam * ior - (1 - lam) * hlr)})
    return out


def augmentation_robust(synthetic: list[float], random_real: list[float], synthetic_plain: list[float],
                        random_plain: list[float], lam: float = LAMBDA) -> list[float]:
    """Per run: ARS from accuracies in percent, with the protocol's augmentation and without."""
    return [_squash(lam * (s - r) / 100 + (1 - lam) * (sp - rp) / 100)
            for s, r, sp, rp in zip(synthetic, random_real, synthetic_plain, random_plain, strict=True)]


def scores(metrics: dict) -> dict:
    """{model: {hlr, ior, lrs, ars}}, each {mean, std} over runs, from what metrics.json holds:
    LRS needs the random_real and full_data rows, ARS the random_real and no_augmentation rows."""
    out = {}
    for model, syn in metrics["synthetic"].items():
        rnd = metrics.get("random_real", {}).get(model)
        if rnd is None:
            continue
        row = {}
        full = metrics.get("full_data", {}).get(model)
        if full is not None:
            per_run = label_robust(syn["runs"], rnd["runs"], full["mean"])
            row.update({k: _stats([r[k] for r in per_run]) for k in ("hlr", "ior", "lrs")})
        plain = metrics.get("no_augmentation", {})
        if model in plain.get("synthetic", {}) and model in plain.get("random_real", {}):
            row["ars"] = _stats(augmentation_robust(syn["runs"], rnd["runs"], plain["synthetic"][model]["runs"],
                                                    plain["random_real"][model]["runs"]))
        if row:
            out[model] = row
    return out


def _stats(values: list[float]) -> dict:
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": round(t.mean().item(), 4), "std": round(t.std(unbiased=False).item(), 4)}


def export(images: torch.Tensor, labels: torch.Tensor, lr: float, out: str | Path) -> Path:
    """out/images.pt, labels.pt, lr.pt: the set as DD-Ranking's evaluators load it (class-major)."""
    out = Path(out)
    order = torch.sort(labels.cpu(), stable=True).indices  # class-major, the set's order kept within a class
    write_torch(out / "images.pt", images.detach().float().cpu()[order].contiguous())
    write_torch(out / "labels.pt", labels.cpu()[order].long().contiguous())
    write_torch(out / "lr.pt", torch.tensor(float(lr)))
    return out
