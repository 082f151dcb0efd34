"""A Markdown report of one or more run directories, side by side.

    python -m genprior.report runs/fashion_mnist/pixel-dm-ipc10-seed0 runs/fashion_mnist/gan-dm-ipc10-seed0 --out report

Writes OUT/report.md with: the runs (config, storage), the accuracy table (every model of
the protocol, the cross-architecture mean, and the random-real and full-data baselines),
the FID/KID/diversity table, loss and accuracy curves (PNG), and each run's grid. It only
reads files (config.yaml, metrics.json, curve.jsonl, grid.png), so it renders instantly;
image metrics missing from a run are named with the command that computes them.
"""
from __future__ import annotations

import io
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from genprior.errors import ArgumentParser, ConfigError
from genprior.files import write_bytes, write_text

PROG = "genprior-report"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


@dataclass
class Run:
    name: str
    path: Path
    config: dict
    metrics: dict
    curve: list[dict]


def load_run(path: str | Path) -> Run:
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"run directory not found: {path}")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{path} is not a run directory (no config.yaml)")
    config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
    curve = []
    if (path / "curve.jsonl").is_file():
        for line in (path / "curve.jsonl").read_text().splitlines():
            try:
                curve.append(json.loads(line))
            except ValueError:  # blank, or torn by a kill or a full disk: run.py drops it on resumption too
                continue
    return Run(path.name, path, config, metrics, curve)


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise ConfigError("give at least one run directory")
    _unique_names(runs)
    out = Path(out)
    (out / "grids").mkdir(parents=True, exist_ok=True)
    md = ["# genprior report", "", _runs_table(runs), "", _accuracy_section(runs), "", _image_section(runs), ""]
    md += _curves_section(runs, out)
    md += ["## Grids", "", "One row per class.", ""]
    for r in runs:
        if (r.path / "grid.png").is_file():
            write_bytes(out / "grids" / f"{r.name}.png", (r.path / "grid.png").read_bytes())
            md += [f"**{r.name}**", "", f"![{r.name}](grids/{r.name}.png)", ""]
        else:
            md += [f"**{r.name}**: no grid.png", ""]
    return write_text(out / "report.md", "\n".join(md) + "\n")


def summary_table(run_dirs: list[str | Path]) -> str:
    """The runs and accuracy tables of a report, as Markdown text (a sweep's summary, genprior/run.py)."""
    runs = [load_run(p) for p in run_dirs]
    _unique_names(runs)
    return _runs_table(runs) + "\n\n" + _accuracy_section(runs)


def _unique_names(runs: list[Run]) -> None:
    """Runs named alike (seed0 in two data sets) get their parent folder prefixed, every one of
    them: the names are counted before any is changed, or the last of them would keep its bare name."""
    counts = Counter(r.name for r in runs)
    for r in runs:
        if counts[r.name] > 1:
            r.name = f"{r.path.parent.name}-{r.path.name}"


def _runs_table(runs: list[Run]) -> str:
    rows = ["| run | data set | synset | objective | IPC | iterations | seed | stored floats |",
            "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        c = r.config
        storage = r.metrics.get("storage", {})
        stored = storage.get("floats", "") if isinstance(storage, dict) else storage
        rows.append(f"| {r.name} | {c.get('dataset', {}).get('name', '?')} | {c.get('synset', {}).get('kind', '?')} | "
                    f"{c.get('objective', {}).get('kind', '?')} | {c.get('ipc', '?')} | {c.get('iterations', '?')} | "
                    f"{c.get('seed', '?')} | {stored} |")
    return "\n".join(rows)


def _protocol_label(metrics: dict) -> str:
    p = metrics.get("protocol_config", {})
    return f"{metrics.get('protocol', '?')}: {p.get('epochs', '?')} epochs x {p.get('runs', '?')} runs"


def accuracy_text(row: dict, pm: str = "+-") -> str:
    """One architecture's row as people read it: "83.55 +- 0.25", and how many runs diverged, if any
    (genprior/evaluate.py train_runs)."""
    diverged = f" ({len(row['diverged'])} of {len(row['runs'])} runs diverged)" if row.get("diverged") else ""
    return f"{row['mean']:.2f} {pm} {row['std']:.2f}{diverged}"


def _fmt(s: dict | None) -> str:
    return "" if not s else accuracy_text(s, "±")


def _accuracy_section(runs: list[Run]) -> str:
    with_acc = [r for r in runs if r.metrics.get("synthetic")]
    if not with_acc:
        return "## Accuracy\n\nNo run has accuracy figures (metrics.json without `synthetic`: eval was off)."
    models = list(dict.fromkeys(m for r in with_acc for m in r.metrics["synthetic"]))
    others = [m for m in models if m != "convnet"]
    cross = len(others) > 0
    protocols = sorted({_protocol_label(r.metrics) for r in with_acc})
    head = "| | " + " | ".join(models) + (" | cross-arch mean |" if cross else " |")
    lines = [f"## Accuracy (% test accuracy, final epoch, mean ± std over runs; protocol {', '.join(protocols)})",
             "", head, "|---" * (len(models) + 1 + cross) + "|"]

    def row(label: str, table: dict) -> str:
        cells = [_fmt(table.get(m)) for m in models]
        if cross:
            means = [table[m]["mean"] for m in others if m in table]
            cells.append(f"{sum(means) / len(means):.2f}" if len(means) == len(others) else "")
        return f"| {label} | " + " | ".join(cells) + " |"

    for r in with_acc:
        lines.append(row(f"**{r.name}**", r.metrics["synthetic"]))
    seen = set()
    for r in with_acc:  # baselines once per (data set, IPC, protocol): runs side by side usually share them
        key = (r.config.get("dataset", {}).get("name"), r.config.get("ipc"), _protocol_label(r.metrics))
        if key in seen:
            continue
        seen.add(key)
        under = f", {_protocol_label(r.metrics)}" if len(protocols) > 1 else ""
        if r.metrics.get("random_real"):
            lines.append(row(f"random real ({key[0]}, IPC {key[1]}{under})", r.metrics["random_real"]))
        if r.metrics.get("full_data"):
            lines.append(row(f"full train split ({key[0]}{under})", r.metrics["full_data"]))
    gains = [(r.name, m, s) for r in with_acc for m, s in r.metrics.get("summary", {}).items()]
    if gains:
        lines += ["", "Gain over random real (points) and share of the random-to-full gap closed:", ""]
        lines += [f"- {name}, {m}: {s['gain_over_random']:+.2f}, gap closed {_percent(s['gap_closed'])}"
                  for name, m, s in gains]
    ranked = [(r.name, m, s) for r in with_acc for m, s in r.metrics.get("dd_ranking", {}).items()]
    if ranked:
        lines += ["", "DD-Ranking scores (genprior/ddranking.py: on fractions, mean ± std over runs; "
                      "LRS and ARS lie in [0, 1], higher is better):", "",
                  "| run | model | HLR | IOR | LRS | ARS |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {m} | " + " | ".join(_score(s.get(k)) for k in ("hlr", "ior", "lrs", "ars")) + " |"
                  for name, m, s in ranked]
    return "\n".join(lines)


def _reference(ref: dict) -> str:
    """The real images a run's image metrics were measured against, in words."""
    extra = [f"{ref['resolution']} px"] if ref.get("resolution") else []
    extra += [f"a fixed subset of {ref['limit']}"] if ref.get("limit") else []
    return f"{ref['dataset']} {ref['split']} split" + (f" ({', '.join(extra)})" if extra else "")


def _score(s: dict | None) -> str:
    return "" if not s else f"{s['mean']:.3f} ± {s['std']:.3f}"


def _image_section(runs: list[Run]) -> str:
    lines = ["## Image metrics", ""]
    measured = [r for r in runs if r.metrics.get("images")]
    if measured:
        spaces = list(dict.fromkeys(k for r in measured for k, v in r.metrics["images"].items()
                                    if isinstance(v, dict) and ("overall" in v or "unavailable" in v) and k != "lpips"))
        refs = list(dict.fromkeys(_reference(r.metrics["images"]["reference"]) for r in measured))
        lines += [f"Against the {'; '.join(refs)}. KID ×10³ (unbiased; FID on few images is "
                  "biased upward). Within-class: mean pairwise feature distance, synthetic / real.", ""]
        head = "| run | n |" + "".join(f" FID ({s}) | KID×10³ ({s}) | within-class ({s}) |" for s in spaces)
        lines += [head + " LPIPS within-class |", "|---|---|" + "---|---|---|" * len(spaces) + "---|"]
        for r in measured:
            im = r.metrics["images"]
            cells = [r.name, str(im.get("n", ""))]
            for s in spaces:
                e = im.get(s, {})
                if "overall" not in e:
                    cells += ["unavailable", "", ""]
                    continue
                o = e["overall"]
                cells += ["n/a" if o["fid"] is None else f"{o['fid']:.1f}",
                          "n/a" if o["kid"] is None else f"{1e3 * o['kid']:.2f}",
                          _ratio(e["diversity"]["mean"], e["reference_diversity"]["mean"])]
            lp = im.get("lpips", {})
            cells.append(f"{lp['mean']:.3f}" if lp.get("mean") is not None else "unavailable")
            lines.append("| " + " | ".join(cells) + " |")
        notes = {f"{k}: {v['unavailable']}" for r in measured for k, v in r.metrics["images"].items()
                 if isinstance(v, dict) and "unavailable" in v}
        lines += [""] + [f"- unavailable: {n}" for n in sorted(notes)]
    missing = [r for r in runs if not r.metrics.get("images")]
    if missing:
        lines += ["", "Not measured yet: " + ", ".join(r.name for r in missing) +
                  f" (`python -m genprior.metrics {' '.join(str(r.path) for r in missing)}`)."]
    return "\n".join(lines)


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.0f} %"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a:.2f} / {b:.2f}"


def _curves_section(runs: list[Run], out: Path) -> list[str]:
    lines = ["## Curves", ""]
    loss = {r.name: [(p["step"], p["loss"]) for p in r.curve if "loss" in p] for r in runs}
    loss = {k: v for k, v in loss.items() if any(math.isfinite(y) for _, y in v)}  # a diverged run's NaNs: no line
    if loss:
        positive = all(y > 0 for v in loss.values() for _, y in v if math.isfinite(y))
        line_plot(loss, "distillation loss", out / "loss.png", log_y=positive)
        lines += ["![loss](loss.png)", ""]
    acc = {}
    for r in runs:
        for p in r.curve:
            for k, v in p.items():
                if k not in ("step", "loss") and isinstance(v, (int, float)) and math.isfinite(v):
                    acc.setdefault(f"{r.name} {k}", []).append((p["step"], v))
    if acc:
        line_plot(acc, "test accuracy during distillation (%)", out / "accuracy.png")
        lines += ["![accuracy](accuracy.png)", ""]
    if not loss and not acc:
        lines += ["No finite curve values in these runs (no curve.jsonl, or only a diverged loss).", ""]
    return lines


def line_plot(series: dict[str, list[tuple[float, float]]], title: str, path: Path, log_y: bool = False,
              size: tuple[int, int] = (720, 420)) -> Path:
    """A plain line chart with PIL (no plotting library among the dependencies)."""
    w, h = size
    left, right, top, bottom = 70, 20, 34, 40  # margins of the plot area; the legend goes below it
    img = Image.new("RGB", (w, h + 18 * len(series)), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    f = (lambda y: math.log10(y)) if log_y else (lambda y: y)
    pts = [(x, f(y)) for v in series.values() for x, y in v if math.isfinite(y) and (y > 0 or not log_y)]
    if not pts:
        raise ConfigError(f"nothing to plot for {title}")
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pw, ph = w - left - right, h - top - bottom

    def at(x, y):
        return left + (x - x0) / (x1 - x0) * pw, top + (1 - (y - y0) / (y1 - y0)) * ph

    d.text((left, 10), title + (" (log scale)" if log_y else ""), fill="black", font=font)
    d.rectangle([left, top, left + pw, top + ph], outline="#888888")
    for i in range(5):  # 5 ticks on each axis
        ty, tx = y0 + (y1 - y0) * i / 4, x0 + (x1 - x0) * i / 4
        _, py = at(x0, ty)
        px, _ = at(tx, y0)
        d.line([left, py, left + pw, py], fill="#eeeeee")
        d.text((4, py - 6), f"{10 ** ty:.3g}" if log_y else f"{ty:.3g}", fill="black", font=font)
        d.text((px - 10, top + ph + 4), f"{tx:.0f}", fill="black", font=font)
    d.text((left + pw // 2 - 10, top + ph + 18), "step", fill="black", font=font)
    for i, (name, v) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        xy = [at(x, f(y)) for x, y in sorted(v) if math.isfinite(y) and (y > 0 or not log_y)]
        if len(xy) > 1:
            d.line(xy, fill=color, width=2)
        for px, py in xy if len(xy) <= 30 else []:
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
        ly = top + ph + 36 + 18 * i
        d.line([left, ly + 6, left + 24, ly + 6], fill=color, width=3)
        d.text((left + 30, ly), name, fill="black", font=font)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return write_bytes(path, buffer.getvalue())  # atomic, as every file genprior writes


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description="report.md + plots for one or more run directories, side by side.")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output folder (default: ./report)")
    a = p.parse_args(argv)
    try:
        path = write_report(a.runs, a.out)
    except ConfigError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
