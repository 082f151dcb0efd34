"""Experiment trackers through Accelerate (`log_with=tensorboard`, `wandb`, ...).

Accelerate owns the trackers; genprior only decides what they receive: the resolved
config as hyperparameters, the loss at every log line, the accuracy curve and the set's
grid at every eval point, the storage, and the final accuracies and image metrics. All of
it goes through genprior/runlog.py's `RunLog`, so log.txt, curve.jsonl and the trackers never
disagree. Nothing here is imported, and no tracker package is touched, unless a run asks.

Where they write is each tracker's own: TensorBoard and Aim under <run_dir>/trackers/, W&B
under <run_dir>/wandb in offline mode unless WANDB_MODE says otherwise, MLflow and DVCLive at
their own defaults (./mlruns, ./dvclive); Comet, ClearML, SwanLab and Trackio are online.
"""
from __future__ import annotations

import os
from pathlib import Path

from genprior.errors import ConfigError

PROJECT = "genprior"


def names(spec) -> list[str]:
    """log_with as a list of tracker names, each known to Accelerate and importable here."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    wanted = [spec] if isinstance(spec, str) else list(spec or [])
    known = sorted(LOGGER_TYPE_TO_CLASS)
    for name in wanted:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise ConfigError(f"unknown log_with tracker {name!r}; valid: {', '.join(known)}")
        if name not in [str(t) for t in get_available_trackers()]:
            # Accelerate would drop it with a debug message; a run asked for it, so say so
            raise ConfigError(f"log_with={name} needs the {name} package, which is not installed here "
                              f"(pip install {name})")
    return wanted


def start(accelerator, config: dict, run_dir: Path) -> None:
    """Open the trackers of this run (rank 0; Accelerate ignores the call elsewhere)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    accelerator.init_trackers(PROJECT, config=hyperparameters(config),
                              init_kwargs={"wandb": {"dir": str(run_dir)}})


def hyperparameters(config: dict, prefix: str = "") -> dict:
    """The nested config as flat `a.b.c` keys with values every tracker accepts (TensorBoard's
    hparams take only numbers, strings and booleans)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(hyperparameters(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def log_image(accelerator, name: str, image, step: int) -> None:
    """One (C, H, W) image in [0, 1] to every tracker that takes images."""
    for tracker in accelerator.trackers:
        if hasattr(tracker, "log_images"):
            tracker.log_images({name: image[None]}, step=step)
