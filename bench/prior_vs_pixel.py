"""A prior (GLaD or HaBa) vs pixel space with the same objective and budget, judged across architectures.

    python bench/prior_vs_pixel.py                                  # GLaD: dc dm mtt x IPC 1 10, cross_arch protocol
    python bench/prior_vs_pixel.py --objectives dm --ipc 10 --iterations 200 -- protocol.runs=2 protocol.epochs=300
    python bench/prior_vs_pixel.py --sides pixel ...                # one side now, the other later
    python bench/prior_vs_pixel.py --prior-overrides synset.init=invert -- protocol.runs=3 protocol.epochs=300
    python bench/prior_vs_pixel.py --prior haba --objectives mtt --ipc 1 -- protocol.runs=3 protocol.epochs=300
    python bench/prior_vs_pixel.py --prior haba --markdown          # the README's table of the current rows

For every (objective, IPC) it distills twice, `pixel=<objective>` and `<prior>=<objective>`,
with the same iteration count (the pixel preset's unless --iterations), seed and protocol, via
bench/distill.py (so each run resumes and lands in bench/results/distill_<name>.json).
Then bench/results/<prior>_vs_pixel.json gets one row per pair: ConvNet accuracy and the
mean over the other architectures of the protocol (ResNet-18, VGG-11, AlexNet, ViT for
cross_arch), each with its std over runs, for both, and the difference, marked as within
the noise where it is smaller than the combined std. Overrides after `--` apply to every run
and are part of the run names and the row key, so a reduced protocol never mixes with the
full one; --prior-overrides apply to the prior's side only. The pixel run's name does not
depend on the prior, so one pixel set serves GLaD, HaBa and every --prior-overrides variant:
the most expensive part of a comparison (judging across architectures) is paid once.
(Earlier name: bench/glad_vs_pixel.py, --priors for --sides and --glad for --prior-overrides;
the commands in older result files run here with those spellings.)
"""
from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from pathlib import Path
from typing import Callable

from distill import distill_seconds, distilled, result_file, stale, stale_result  # bench/distill.py (the script's own folder)
from genprior.files import write_json
from genprior.config import compose
from resumable import tag as overrides_tag  # bench/resumable.py
from presets_table import accuracy_row, combined_std  # bench/presets_table.py (the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PRIORS = ["glad", "haba"]  # presets glad=<objective> and haba=<objective> (configs/)


def judge(result: dict) -> dict:
    """ConvNet and the mean over the other architectures, each with its std over runs
    (bench/presets_table.py accuracy_row: the cross-architecture std is that of run r's mean)."""
    syn = result["synthetic"]
    return {**accuracy_row(syn), "runs": min(len(s["runs"]) for s in syn.values()),
            "distill_s": distill_seconds(result), "eval_s": result.get("eval_s")}


def difference(a: dict, b: dict, key: str, std_key: str) -> dict | None:
    """a - b for one figure, and whether it is inside the noise (smaller than the combined std;
    with one run per side there is no std, so no difference counts as outside it)."""
    if None in (a.get(key), b.get(key)):
        return None
    d = round(a[key] - b[key], 2)
    noise = round(combined_std(a, b, std_key), 2) if min(a.get("runs", 1), b.get("runs", 1)) > 1 else None
    return {"value": d, "combined_std": noise, "within_noise": None if noise is None else abs(d) < noise}


NETWORKS = {"convnet": "ConvNet", "resnet18": "ResNet-18", "vgg11": "VGG-11", "alexnet": "AlexNet", "vit": "ViT"}
OBJECTIVES = ["dc", "dm", "mtt"]


def markdown(table: dict, prior: str, protocol: str = "cross_arch",
             why_stale: Callable[[str | None], str | None] = lambda result: None) -> str:
    """The rows of `table` (a <prior>_vs_pixel.json) that have both sides, are not marked
    superseded and whose sides' results are today's (`why_stale(path)`: why the result a side
    was read from is not, else None), as the README's Markdown table: each network's mean +- std
    over runs, the cross-architecture mean, and the prior's lead on it, `(noise)` where inside the
    combined std. A row made with --prior-overrides names them beside the prior; variants of one
    cell judged against the same pixel set share its pixel row."""
    rows = sorted((r for r in table.values() if "superseded" not in r and "pixel" in r and prior in r
                   and r["protocol"] == protocol
                   and not any(why_stale(r[side].get("result")) for side in ("pixel", prior))),
                  key=lambda r: (r["ipc"], OBJECTIVES.index(r["objective"]), r.get(f"{prior}_overrides") or []))
    nets = list(NETWORKS) if not rows else list(rows[0]["pixel"]["per_model"])
    lines = ["| objective, IPC (steps) | set | " + " | ".join(NETWORKS.get(n, n) for n in nets)
             + " | cross-arch mean | lead |", "|---" * (len(nets) + 4) + "|"]
    shown = None  # the pixel row printed last: the sorting puts a cell's variants after it
    for r in rows:
        lead = r.get(f"{prior}_minus_pixel", {}).get("cross_arch_mean") or {}
        lead_text = "" if not lead else f"{lead['value']:+.2f}" + (" (noise)" if lead["within_noise"] else "")
        changed = " ".join(r.get(f"{prior}_overrides") or [])
        pixel = (r["objective"], r["ipc"], r["iterations"], r["pixel"].get("result"), r["pixel"]["per_model"])
        sides = [(prior, prior + (f" ({changed})" if changed else ""))]
        if pixel != shown:
            sides.insert(0, ("pixel", "pixel"))
            shown = pixel
        for side, name in sides:
            cells = [r[side]["per_model"].get(n, "n/a") for n in nets]
            mean = f"{r[side]['cross_arch_mean']:.2f} +- {r[side]['cross_arch_std']:.2f}"
            lines.append(f"| {r['objective'].upper()}, {r['ipc']} ({r['iterations']}) | {name} | "
                         + " | ".join(cells) + f" | {mean} | {lead_text if side == prior else ''} |")
    return "\n".join(lines)


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", nargs="+", default=OBJECTIVES)
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    p.add_argument("--iterations", type=int, default=None, help="both runs (default: each preset's own)")
    p.add_argument("--protocol", default="cross_arch")
    p.add_argument("--prior", default="glad", choices=PRIORS, help="the side compared with pixels")
    p.add_argument("--sides", "--priors", nargs="*", default=None, choices=["pixel", "prior", *PRIORS],
                   help="run only these sides now: pixel and/or prior (default both; none: only rebuild the "
                        "rows from results); a row's difference appears once both are in")
    p.add_argument("--prior-overrides", "--glad", nargs="*", default=[], metavar="OVERRIDE",
                   help="overrides for the prior's side only (e.g. synset.init=invert); part of its name and the row key")
    p.add_argument("--markdown", action="store_true", help="print the table of the current rows and run nothing")
    p.add_argument("overrides", nargs="*", help="run.py overrides for every run (after --)")
    a = p.parse_args()
    out = RESULTS / f"{a.prior}_vs_pixel.json"
    if a.markdown:
        table, why_stale = read(out), functools.cache(stale_result)  # each result read and judged once
        print(markdown(table, a.prior, a.protocol, why_stale))
        for key, r in table.items():  # what the table leaves out, and why, where a reader of it looks
            why = [f"{side}: {w}" for side in ("pixel", a.prior)
                   if side in r and (w := why_stale(r[side].get("result")))]
            if why and "superseded" not in r and r["protocol"] == a.protocol:
                print(f"left out {key}: {'; '.join(why)}", file=sys.stderr)
        return
    sides = {"pixel", a.prior} if a.sides is None else {a.prior if s == "prior" else s for s in a.sides}
    command = "python bench/prior_vs_pixel.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    tag = overrides_tag(a.overrides)
    prior_tag = overrides_tag(a.prior_overrides)
    for objective in a.objectives:
        for ipc in a.ipc:
            iterations = a.iterations or compose([f"pixel={objective}"]).iterations  # one budget for both
            key = f"{objective}_ipc{ipc}_it{iterations}_{a.protocol}{tag}{prior_tag}"
            fresh = {}
            for prior in ("pixel", a.prior):
                side = a.prior_overrides if prior != "pixel" else []
                name = f"vs_{prior}_{objective}_ipc{ipc}_it{iterations}_{a.protocol}{tag}{prior_tag if side else ''}"
                result = result_file(name)
                if prior in sides:
                    overrides = [f"{prior}={objective}", f"ipc={ipc}", f"iterations={iterations}",
                                 f"protocol={a.protocol}", "eval.baselines=false", *a.overrides, *side]
                    distilled(name, overrides)
                elif not result.is_file():  # the other side has not run yet (or runs elsewhere)
                    continue
                elif why := stale(read(result)):  # bench/distill.py reruns it when that side runs
                    print(f"{name}: not used, {why}", flush=True)
                    continue
                # the side not run now is read from its result: the pixel run serves every prior and --prior-overrides
                # variant. Its command: the one this table recorded with that very result, else the result's own
                recorded = json.loads(result.read_text())
                known = read(out).get(key, {}).get(prior, {})
                fresh[prior] = {**judge(recorded), "result": f"bench/results/{result.name}"}
                fresh[prior]["command"] = command if prior in sides else (
                    known["command"] if known.get("result") == fresh[prior]["result"] else recorded["command"])
            if not fresh:  # no side has a current result: the row stays as it is (or absent)
                continue
            # The row is made from the current results alone, so a rerun under the same key replaces
            # a stale row (and its superseded mark) whole. Read the table only now: another
            # invocation may have written rows while these runs went on.
            table = read(out)
            row = {**fresh, "objective": objective, "ipc": ipc, "iterations": iterations,
                   "protocol": a.protocol, "overrides": a.overrides, f"{a.prior}_overrides": a.prior_overrides}
            if "pixel" in row and a.prior in row:
                row[f"{a.prior}_minus_pixel"] = {k: difference(row[a.prior], row["pixel"], k, std)
                                                 for k, std in (("convnet", "convnet_std"),
                                                                ("cross_arch_mean", "cross_arch_std"))}
            table[key] = row
            RESULTS.mkdir(parents=True, exist_ok=True)
            write_json(out, table)
            print(f"{key}: " + ", ".join(f"{p} {row[p].get('convnet')} / {row[p].get('cross_arch_mean')}"
                                         for p in ("pixel", a.prior) if p in row)
                  + " (ConvNet / cross-arch mean)", flush=True)


if __name__ == "__main__":
    main()
