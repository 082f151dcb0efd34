"""What a run writes as it goes: log.txt (human), curve.jsonl (machine) and the experiment
trackers (genprior/trackers.py), all from rank 0 (genprior/run.py)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from genprior.files import write_text
from genprior.progress import append_stamped
from genprior.rundir import LOG


def final_scalars(metrics: dict) -> dict:
    """metrics.json's headline numbers as flat tracker scalars."""
    out = {f"accuracy/{model}": s["mean"] for model, s in metrics.get("synthetic", {}).items()}
    for row in ("random_real", "full_data"):
        out.update({f"{row}/{model}": s["mean"] for model, s in metrics.get(row, {}).items()})
    for model, s in metrics.get("dd_ranking", {}).items():
        out.update({f"dd_ranking/{k}/{model}": v["mean"] for k, v in s.items()})
    for space, m in metrics.get("images", {}).items():  # {space name: {"overall": {fid, kid, ...}, ...}, ...}
        if isinstance(m, dict) and "overall" in m:
            out.update({f"images/{space}/{k}": v for k, v in m["overall"].items() if isinstance(v, (int, float))})
            if m.get("diversity", {}).get("mean") is not None:
                out[f"images/{space}/diversity"] = m["diversity"]["mean"]
    return out


class RunLog:
    """log.txt (human), curve.jsonl (machine) and the trackers (genprior/trackers.py) of a run,
    written by rank 0 only: every curve point goes to all of them."""

    def __init__(self, run_dir: Path, main: bool, trackers=None):
        self.run_dir, self.main, self.trackers = run_dir, main, trackers  # trackers: an Accelerator or None

    def __call__(self, line: str, curve: dict | None = None, echo: bool = True) -> None:
        if not self.main:
            return
        from tqdm import tqdm

        if echo:
            tqdm.write(line)
        append_stamped(self.run_dir / LOG, line)
        if curve is not None:
            with open(self.run_dir / "curve.jsonl", "a") as f:
                f.write(json.dumps(curve) + "\n")
            self.track({k if k == "loss" else f"curve/{k}": v for k, v in curve.items() if k != "step"},
                       curve["step"])

    def track(self, values: dict, step: int) -> None:
        if self.trackers is not None and self.main and values:
            self.trackers.log(values, step=step)

    def image(self, image: torch.Tensor, step: int) -> None:
        if self.trackers is not None and self.main:
            from genprior.trackers import log_image

            log_image(self.trackers, "grid", image, step)

    def has_accuracy_at(self, step: int) -> bool:
        path = self.run_dir / "curve.jsonl"
        lines = path.read_text().splitlines() if path.is_file() else []
        return any(curve_step(line) == step and json.loads(line).keys() - {"step", "loss"} for line in lines)

    def drop_curve_after(self, step: int) -> None:
        """Keep the curve up to `step` (all of it gone on a fresh start, step 0)."""
        path = self.run_dir / "curve.jsonl"
        if not self.main or not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines() if curve_step(line) <= step]
        write_text(path, "".join(line + "\n" for line in kept))  # atomic: a kill here leaves the old curve or the new one, never half of it


def curve_step(line: str) -> float:
    """A curve.jsonl line's step; infinity for a blank or torn line (a disk that filled mid-write), which goes."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")
