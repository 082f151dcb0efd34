"""Choose an lr (or any one key) from accuracy: one run per value, the same budget, noise stated.

    python bench/lr_sweep.py --preset glad=dm --ipc 10 --key synset.optim.latents.lr --values 0.05 0.1 0.2 0.5 \
        -- iterations=100 protocol.runs=3 protocol.epochs=300
    python bench/lr_sweep.py --preset haba=dm --ipc 1 --key synset.optim.bases.lr --values 1 5 20 -- iterations=200

bench/lr_probe.py finds the lr whose first step moves the images as far as the pixel
preset's does: a principled start. This picks among candidates by what counts, the final
accuracy under a named protocol. Every value is distilled with the preset plus the
overrides after `--` (the same for every value) through bench/distill.py, so each run
resumes and lands in bench/results/distill_<name>.json. bench/results/lr_sweep.json gets
one entry per (preset, IPC, key, overrides): per value ConvNet and cross-architecture mean
with their std over runs (bench/presets_table.py accuracy_row), the value with the best
ConvNet mean, and whether the runner-up is within the combined std of it (then the pick is
a tie, and the preset should keep its principled value unless other evidence decides).
The pick is made on the test split, as the DC, DM and MTT papers chose their settings; a
value is read from the entry's current results only (one gone stale, bench/distill.py, or
set aside, drops out of the verdict; a value whose run fails is recorded and takes no part).
--check-preset exits with status 3 when the sweep's best beats the preset's value (`beaten`:
on the ConvNet by more than the two values' combined std, and not worse on the other networks'
mean by more than theirs), so that what is distilled with the preset next (bench/comparisons.sh)
waits until the preset is set to the pick; or when no value gave a result. A preset value the
sweep did not run is beaten unless the verdict is a tie.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from distill import distill_seconds, distilled, recorded, stale  # bench/distill.py (the script's own folder)
from genprior.files import write_json
from genprior.config import compose
from resumable import tag as overrides_tag  # bench/resumable.py
from presets_table import accuracy_row, combined_std  # bench/presets_table.py (the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def verdict(rows: dict[str, dict]) -> dict:
    """The best value by ConvNet mean, and whether the runner-up is inside the noise (values whose
    run failed take no part)."""
    rows = {v: r for v, r in rows.items() if "convnet" in r}
    if not rows:
        return {"best": None}
    ranked = sorted(rows, key=lambda v: rows[v]["convnet"], reverse=True)
    out = {"best": ranked[0]}
    if len(ranked) > 1:
        a, b = rows[ranked[0]], rows[ranked[1]]
        noise = combined_std(a, b, "convnet_std")
        out.update(runner_up=ranked[1], margin=round(a["convnet"] - b["convnet"], 2), combined_std=round(noise, 2),
                   tie=a["convnet"] - b["convnet"] < noise)
    return out


def beaten(rows: dict[str, dict], held: str) -> bool:
    """Whether the sweep's best value beats the preset's `held` one: ahead on the ConvNet outside the
    noise (the combined std), and not behind on the other networks' mean outside theirs. The
    ConvNet picks, the others can veto: a value that wins where the set was distilled and loses
    on unseen networks is not the better one for a toolkit judged across architectures."""
    pick = verdict(rows)
    if pick["best"] is None or same_value(pick["best"], held):
        return False
    mine = next((r for v, r in rows.items() if same_value(v, held) and "convnet" in r), None)
    if mine is None:  # the sweep did not run the preset's value
        return not pick.get("tie", True)
    best = rows[pick["best"]]

    def lead(key: str, std: str) -> float | None:  # best minus held, in units of their combined std
        if None in (best.get(key), mine.get(key)):
            return None
        return (best[key] - mine[key]) / max(combined_std(best, mine, std), 1e-9)

    others = lead("cross_arch_mean", "cross_arch_std")
    return lead("convnet", "convnet_std") > 1 and not (others is not None and others < -1)


def same_value(a: str, b: str) -> bool:
    """Whether two values of a key as written are one (0.1 and 1e-1 are; identity and identity are)."""
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def preset_value(preset: str, ipc: int, key: str) -> str:
    """The preset's value of `key` as a sweep writes it on the command line (None as null)."""
    held = OmegaConf.select(compose([preset, f"ipc={ipc}"]), key)
    return "null" if held is None else str(held)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True, help="e.g. glad=dm")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--key", required=True, help="the config key to sweep, e.g. synset.optim.latents.lr")
    p.add_argument("--values", nargs="+", required=True)
    p.add_argument("--check-preset", action="store_true",
                   help="exit 3 when the sweep's best value beats the preset's (see above)")
    p.add_argument("overrides", nargs="*", help="run.py overrides for every value (after --)")
    a = p.parse_args()
    out = RESULTS / "lr_sweep.json"
    command = "python bench/lr_sweep.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    tag = overrides_tag(a.overrides)
    entry = f"{a.preset.replace('=', '_')}_ipc{a.ipc}_{a.key}{tag}"
    checked = False
    for value in a.values:
        name = f"sweep_{entry}_{value}"
        try:
            result = distilled(name, [a.preset, f"ipc={a.ipc}", "eval.baselines=false", f"{a.key}={value}",
                                      *a.overrides])
        except subprocess.CalledProcessError as e:  # diverged (an lr too large: what a sweep looks for)
            result = {"failed": f"bench/distill.py exited {e.returncode}"}
        table = json.loads(out.read_text()) if out.is_file() else {}  # other sweeps may have landed meanwhile
        row = table.setdefault(entry, {"preset": a.preset, "ipc": a.ipc, "key": a.key, "overrides": a.overrides,
                                       "values": {}})
        row.pop("command", None)  # each value records the command that made it
        row["values"][value] = {"failed": result["failed"], "command": command} if "failed" in result else {
            **accuracy_row(result["synthetic"]), "distill_s": distill_seconds(result), "eval_s": result["eval_s"],
            "loss_first_last": result["loss_first_last"], "values": result.get("values"), "command": command,
            "result": recorded(name)}
        earlier = [] if checked else [v for v in row["values"] if v not in a.values]
        checked = True  # (this call's values were just checked by bench/distill.py itself)
        for v in earlier:  # values of earlier calls, once: only while still today's
            made = row["values"][v]
            if "failed" in made:
                continue  # no figure to go stale; a rerun of the sweep tries it again
            file = ROOT / made["result"]
            why = "its result is gone" if not file.is_file() else stale(json.loads(file.read_text()))
            if why:
                print(f"{a.key}={v}: dropped from the verdict, {why}", flush=True)
                del row["values"][v]
        row["verdict"] = verdict(row["values"])
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_json(out, table)
        v = row["values"][value]
        if "failed" in v:
            print(f"{a.key}={value}: {v['failed']}; so far {row['verdict']}", flush=True)
            continue
        print(f"{a.key}={value}: ConvNet {v.get('convnet')} +- {v.get('convnet_std')}, cross-arch "
              f"{v.get('cross_arch_mean')} +- {v.get('cross_arch_std')}; so far {row['verdict']}", flush=True)
    if a.check_preset:
        held, best = preset_value(a.preset, a.ipc, a.key), row["verdict"]["best"]
        if best is None:
            print(f"no value of {a.key} gave a result", flush=True)
            sys.exit(3)
        if beaten(row["values"], held):
            print(f"{a.preset} holds {a.key}={held}, the sweep picks {best} ({out.relative_to(ROOT)}): set it in "
                  f"the preset before distilling with it", flush=True)
            sys.exit(3)


if __name__ == "__main__":
    main()
