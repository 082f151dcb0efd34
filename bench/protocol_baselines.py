"""Baselines of the accuracy protocol on real data: random real subsets and the full train split.

    python bench/protocol_baselines.py [--dataset fashion_mnist] [--protocol dc_convnet] [--ipc 1 10]

Writes bench/results/protocol_baselines_<dataset>_<protocol>.json: one entry per part with its
figures, wall time and the command that made it. Interrupted? Rerun the same command: finished
parts are kept and skipped (the full-data figure also sits in the protocol's cache).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from genprior.evaluate import full_data, load_protocol, random_real

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--protocol", default="dc_convnet")
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    p.add_argument("--model", default="convnet")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    protocol = load_protocol(a.protocol, [f"models=[{a.model}]"])
    out = RESULTS / f"protocol_baselines_{a.dataset}_{a.protocol}.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    command = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    machine = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device,
               "cpu": platform.processor() or platform.machine()}

    parts = [(f"random_real_ipc{ipc}", lambda ipc=ipc: random_real(a.dataset, ipc, protocol, device=a.device))
             for ipc in a.ipc]
    if not a.skip_full:
        parts.append((f"full_data_{protocol.full_data.name}",
                      lambda: {a.model: full_data(a.dataset, a.model, protocol, device=a.device)}))
    for name, job in parts:
        if name in results:
            print(f"{name}: done earlier, kept")
            continue
        t0 = time.time()
        figures = job()
        results[name] = {"figures": figures, "wall_s": round(time.time() - t0, 1), "command": command,
                         "protocol": protocol.name, "machine": machine}
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        s = figures[a.model]
        print(f"{name}: {s['mean']:.2f} +- {s['std']:.2f} % ({results[name]['wall_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
