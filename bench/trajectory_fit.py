"""How closely distilled MTT sets retrace their experts: each set's trajectory-matching loss
(genprior/objectives/mtt.py) over the same draws, with the set's own learned lr and no update.

A run logs one draw a step (one expert, one start epoch, one batch order and augmentation),
too noisy to rank two sets by (docs/measurements.md, GLaD, MTT at IPC 10). Here every set
meets the same DRAWS draws, the objective's seeded ones for steps 0..DRAWS-1 at the runs'
shared seed, so a gap between two sets is theirs and not the draws'. A set whose networks
trail another's while it retraces the experts as closely has a gap that trajectory matching
does not see; one that retraces them less closely could not follow them (a prior's range).

    python bench/trajectory_fit.py RUN_DIR [RUN_DIR ...] [--draws 50]

Each RUN_DIR is a finished genprior/run.py MTT run (its config.yaml and synset.safetensors);
the figures go to bench/results/trajectory_fit.json under the run folder's name.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from genprior.files import write_json
from resumable import command  # bench/resumable.py (the script's own folder)

RESULTS = Path(__file__).resolve().parent / "results"


def trajectory_fit(run_dir: Path, draws: int) -> dict:
    """{mean, std, draws, ...}: the run's set's MTT loss over draws 0..draws-1, no update."""
    from omegaconf import OmegaConf

    from genprior.config import check
    from genprior.context import RunContext
    from genprior.data import load_split
    from genprior.errors import ConfigError
    from genprior.progress import progress
    from genprior.rundir import CONFIG
    from genprior.setfile import load_set

    cfg = OmegaConf.load(run_dir / CONFIG)  # as the run resolved it
    if cfg.objective.kind != "mtt":
        raise ConfigError(f"{run_dir} is a {cfg.objective.kind} run; trajectory fit needs an MTT one")
    plan = check(cfg)
    d = plan.dataset
    real = load_split(d.name, "train", d.root, d.resolution, download=False, space=d.space)
    objective = plan.objective.from_config(plan.objective_options, RunContext(real, cfg.ipc, cfg.seed, d))
    saved = load_set(run_dir / "synset.safetensors")
    lr = torch.tensor(float(saved.lr))
    losses = []
    t0 = time.time()
    for step in progress(range(draws), desc=f"fit {run_dir.name[:40]}"):
        losses.append(float(objective(saved.images, saved.labels, step, [0], lr).detach()))
    return {"mean": round(statistics.mean(losses), 4), "std": round(statistics.stdev(losses), 4) if draws > 1 else 0.0,
            "draws": draws, "seed": cfg.seed, "lr": float(saved.lr), "wall_s": round(time.time() - t0, 1),
            "losses": [round(x, 4) for x in losses]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--draws", type=int, default=50, help="draws per set, the same for every set")
    p.add_argument("--out", type=Path, default=RESULTS / "trajectory_fit.json")
    a = p.parse_args()
    results = json.loads(a.out.read_text()) if a.out.is_file() else {}
    for run_dir in a.run_dirs:
        fit = trajectory_fit(run_dir, a.draws)
        results[run_dir.name] = {**fit, "command": command()}
        write_json(a.out, results)  # after each set: a kill keeps the sets measured
        print(f"{run_dir.name}: trajectory loss {fit['mean']} +- {fit['std']} over {a.draws} draws", flush=True)


if __name__ == "__main__":
    main()
