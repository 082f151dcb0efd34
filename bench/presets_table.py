"""Presets side by side under one protocol: accuracy across architectures, FID/KID and diversity, with noise.

    python bench/presets_table.py --presets diffusion=sample minimax=sample minimax=dm pixel=dm --ipc 10 1 \
        -- protocol=cross_arch protocol.runs=2 protocol.epochs=300

Each (preset, IPC) is distilled with its own defaults (its own iterations, recorded per row;
--iterations gives every preset one budget, in rows of their own) plus the overrides after
`--` (the same for every row: name a reduced protocol there) through bench/distill.py, so every
run resumes and lands in bench/results/distill_<name>.json. The first preset of an IPC
also judges a random real subset of that IPC under the same protocol (one row, per
IPC); every row gets FID/KID against the test split and the within-class distance of
Inception features (eval.images). bench/results/presets_table.json gets per row: ConvNet
mean +- std, the mean over the protocol's other architectures with its std (over runs:
run r's mean across them), each architecture's mean +- std, FID, KID, the within-class
distance, distill seconds, judge_s (the networks' training summed over architectures, rows
kept from an earlier call included), eval_s (this call's evaluation wall) and the commands.
Rerunning skips finished runs. `--markdown` runs nothing: it prints the README's table of
the rows already in presets_table.json for those presets, IPCs and overrides.
"""
from __future__ import annotations

import argparse
import functools
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from distill import distill_seconds, distilled, recorded, stale_result  # bench/distill.py (the script's own folder)
from genprior.files import write_json
from genprior.report import accuracy_text
from resumable import tag as overrides_tag  # bench/resumable.py (the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def accuracy_row(syn: dict) -> dict:
    others = [m for m in syn if m != "convnet"]
    row = {"per_model": {m: accuracy_text(s) for m, s in syn.items()}}  # says how many runs diverged, if any
    # what training the networks cost, rows kept from an earlier call included (eval_s: this call's wall)
    row["judge_s"] = round(sum(s.get("wall_s", 0.0) for s in syn.values()), 1)
    if "convnet" in syn:
        row["convnet"], row["convnet_std"] = syn["convnet"]["mean"], syn["convnet"]["std"]
    if others:
        per_run = [statistics.fmean(r) for r in zip(*(syn[m]["runs"] for m in others))]
        row["cross_arch_mean"] = round(statistics.fmean(syn[m]["mean"] for m in others), 2)
        row["cross_arch_std"] = round(statistics.pstdev(per_run), 2) if len(per_run) > 1 else None
    return row


def combined_std(a: dict, b: dict, std: str) -> float:
    """The noise of a difference between two rows' means: their stds (`std` key) combined."""
    return ((a.get(std) or 0) ** 2 + (b.get(std) or 0) ** 2) ** 0.5


IMAGE_KEYS = ("fid", "kid", "within_class_distance", "real_within_class_distance")


def image_row(images: dict | None) -> dict:
    if not images or "inception" not in images:
        return {}
    inc = images["inception"]
    return dict(zip(IMAGE_KEYS, (inc["overall"]["fid"], inc["overall"]["kid"], inc["diversity"]["mean"],
                                 inc["reference_diversity"]["mean"])))


def random_real_images(result: dict, ipc: int) -> dict:
    """Image metrics of the first random real subset the protocol judged beside `result`'s set
    (evaluate.random_real: seed protocol.seed), on its data set, value space and resolution."""
    import torch

    from genprior.data import load_split, to_unit
    from genprior.metrics import image_metrics

    d, seed = OmegaConf.create(result["config"]).dataset, result["protocol_config"]["seed"]
    pool = load_split(d.name, "train", d.root, result["resolution"], space=d.space)
    x, y = pool.random_subset(ipc, torch.Generator().manual_seed(seed))
    return image_metrics(to_unit(x, d.name, d.space, d.root), y, d.name, "test", root=d.root)


def row_key(preset: str, ipc: int, tag: str, iterations: str = "") -> str:
    """A preset's row in presets_table.json: its IPC, the overrides' tag and (not random real's)
    the --iterations budget."""
    return f"{preset.replace(' ', '_')}_ipc{ipc}{tag}" + ("" if preset == "random real" else iterations)


def markdown(table: dict, presets: list[str], ipc: int, tag: str, iterations: str = "",
             why_stale: Callable[[str | None], str | None] = lambda result: None) -> str:
    """The rows of `presets` at `ipc` as a Markdown table (a row not measured yet, or read from a
    result that is not today's, `why_stale(its result path)`, is left out); `iterations`: the rows
    of one --iterations budget (random real has none)."""
    def number(x, digits):
        return "n/a" if x is None else f"{x:.{digits}f}"

    keys = [row_key(p, ipc, tag, iterations) for p in presets]
    rows = [table[k] for k in keys if k in table and not why_stale(table[k].get("result"))]
    real = next((r["real_within_class_distance"] for r in rows if r.get("real_within_class_distance")), None)
    lines = [f"| IPC {ipc} | ConvNet | cross-arch mean | FID | KID | within-class distance (real {number(real, 1)}) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        name = r["preset"] if r["preset"] == "random real" else f"`{r['preset']}`"
        lines.append(f"| {name} | {r['convnet']:.2f} +- {r['convnet_std']:.2f} | {r['cross_arch_mean']:.2f} +- "
                     f"{r['cross_arch_std']:.2f} | {number(r.get('fid'), 1)} | {number(r.get('kid'), 4)} | "
                     f"{number(r.get('within_class_distance'), 1)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["diffusion=sample", "minimax=sample", "minimax=dm", "pixel=dm"])
    p.add_argument("--ipc", type=int, nargs="+", default=[10, 1])
    p.add_argument("--iterations", type=int, default=None, help="every run (default: each preset's own)")
    p.add_argument("--markdown", action="store_true", help="print the README table of finished rows; run nothing")
    p.add_argument("overrides", nargs="*", help="run.py overrides for every run (after --)")
    a = p.parse_args()
    out = RESULTS / "presets_table.json"
    command = "python bench/presets_table.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    tag = overrides_tag(a.overrides)
    iterations = f"_it{a.iterations}" if a.iterations else ""  # a budget other than the presets' is its own row
    if a.markdown:
        table = json.loads(out.read_text()) if out.is_file() else {}
        why_stale = functools.cache(stale_result)  # each result read and judged once
        for ipc in a.ipc:
            print(markdown(table, ["random real", *a.presets], ipc, tag, iterations, why_stale) + "\n")
        for key in (row_key(p, ipc, tag, iterations) for ipc in a.ipc for p in ["random real", *a.presets]):
            if key in table and (why := why_stale(table[key].get("result"))):  # what the tables leave out
                print(f"left out {key}: {why}", file=sys.stderr)
        return
    for ipc in a.ipc:
        for i, preset in enumerate(a.presets):
            name = f"table_{preset.replace('=', '_')}_ipc{ipc}{tag}{iterations}"
            baselines = "[random_real]" if i == 0 else "false"
            overrides = [preset, f"ipc={ipc}", f"eval.baselines={baselines}", "eval.images.enabled=true",
                         *([f"iterations={a.iterations}"] if a.iterations else []), *a.overrides]
            result = distilled(name, overrides)
            table = json.loads(out.read_text()) if out.is_file() else {}
            budget = OmegaConf.create(result["config"]).iterations  # each preset's own, unless --iterations
            table[row_key(preset, ipc, tag, iterations)] = {
                "preset": preset, "ipc": ipc, "iterations": budget, "overrides": a.overrides,
                **accuracy_row(result["synthetic"]),
                **image_row(result.get("images")), "distill_s": distill_seconds(result), "eval_s": result["eval_s"],
                "storage": result.get("storage"), "result": recorded(name), "command": command}
            if result.get("random_real"):
                # the subset is fixed by the run's name (data, IPC, seed): its image metrics, once measured
                # for this result, are reused (Inception features of 100 images: a minute on this CPU)
                known = table.get(row_key("random real", ipc, tag), {})
                images = ({k: known[k] for k in IMAGE_KEYS if k in known}
                          if known.get("result") == recorded(name) and "fid" in known
                          else image_row(random_real_images(result, ipc)))
                table[row_key("random real", ipc, tag)] = {
                    "preset": "random real", "ipc": ipc, "overrides": a.overrides,
                    **accuracy_row(result["random_real"]), **images,
                    "result": recorded(name), "command": command}
            RESULTS.mkdir(parents=True, exist_ok=True)
            write_json(out, table)
            row = table[row_key(preset, ipc, tag, iterations)]
            print(f"{preset} ipc {ipc}: ConvNet {row.get('convnet')} +- {row.get('convnet_std')}, cross-arch "
                  f"{row.get('cross_arch_mean')} +- {row.get('cross_arch_std')}, FID {row.get('fid')}", flush=True)


if __name__ == "__main__":
    main()
