"""Distill with a preset and record the protocol's verdict with its command and wall times.

    python bench/distill.py pixel=dm ipc=10
    python bench/distill.py pixel=dc ipc=1 objective.compile=false
    python bench/distill.py --launch "accelerate launch --mixed_precision bf16" pixel=mtt ipc=10

Runs genprior/run.py (as a subprocess, optionally under a launcher) into
runs/bench/<name>/, then writes bench/results/distill_<name>.json: the command, the
wall time of distillation and of evaluation, the final-epoch accuracies (mean, std,
runs) beside the random-real and full-data baselines, and the loss curve's ends.
A rerun of the same command resumes an unfinished run directory, and does nothing once
bench/results/distill_<name>.json exists (--force runs and records it again).
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from resumable import slug  # bench/resumable.py (the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launch", default="", help="launcher prefix, e.g. 'accelerate launch --num_processes 2'")
    p.add_argument("--name", default=None, help="result name (default: from the overrides)")
    p.add_argument("--force", action="store_true", help="run and record again although the result exists")
    p.add_argument("overrides", nargs="+")
    a = p.parse_args()
    name = a.name or "_".join(slug(o) for o in a.overrides)
    out = RESULTS / f"distill_{name}.json"
    if out.exists() and not a.force:  # a finished run would evaluate its set again: minutes for nothing
        print(f"{name}: done ({out.relative_to(ROOT)}); --force to run it again")
        return
    run_dir = ROOT / "runs" / "bench" / name
    cmd = shlex.split(a.launch) or [sys.executable]
    cmd += [str(ROOT / "genprior" / "run.py"), *a.overrides, f"run_dir={run_dir}"]
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.time() - t0
    log = (run_dir / "log.txt").read_text()
    # one "distilled steps A-B (N steps) in Ts" line per session that finished; a session
    # stopped by a signal logs "stopped by SIGINT|SIGTERM after step N (this session ran A-B in Ts)"
    # (earlier versions: "interrupted after steps A-B (Ts)"), one that was killed nothing
    distill_s = [float(m) for m in re.findall(r"distilled (?:steps \d+-\d+ \()?\d+ steps\)? in ([\d.]+)s", log)]
    interrupted_s = [float(m) for m in re.findall(r"(?:interrupted after steps \d+-\d+ \(|this session ran "
                                                  r"\d+-\d+ in )([\d.]+)s\)", log)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    curve = [json.loads(line) for line in (run_dir / "curve.jsonl").read_text().splitlines()]
    losses = [c["loss"] for c in curve if "loss" in c]
    result = {
        "command": "python bench/distill.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
        "run_command": " ".join(shlex.quote(x) for x in cmd),
        "wall_s_this_call": round(wall, 1),
        "distill_s": distill_s,  # one entry per session of the run that reached the end
        "interrupted_s": interrupted_s,  # sessions stopped by Ctrl-C (they checkpoint where they stop)
        "eval_s": metrics.get("wall_s"),
        "synthetic": metrics["synthetic"], "random_real": metrics.get("random_real"),
        "full_data": metrics.get("full_data"), "summary": metrics.get("summary"),
        "protocol": metrics["protocol"], "protocol_config": metrics["protocol_config"],
        "storage": metrics.get("storage"), "loss_first_last": [losses[0], losses[-1]] if losses else None,
        "images": metrics.get("images"),
        "config": (run_dir / "config.yaml").read_text(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    accs = ", ".join(f"{m} {s['mean']:.2f} +- {s['std']:.2f}" for m, s in metrics["synthetic"].items())
    print(f"{name}: {accs} %; distill {sum(distill_s):.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
