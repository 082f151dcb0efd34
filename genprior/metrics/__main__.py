"""python -m genprior.metrics TARGET [TARGET ...] [dataset=NAME] [options]: see genprior/metrics/__init__.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from genprior.errors import ArgumentParser, ConfigError, message
from genprior.files import write_json
from genprior.host import check_device
from genprior.metrics import MIN_FID, image_metrics, summary_lines
from genprior.options import split_args
from genprior.metrics.targets import is_run_dir, load_target

PROG = "genprior-metrics"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description="FID/KID against a real split and diversity within classes.")
    p.add_argument("targets", nargs="+", help="run directories, set files or image folders; dataset=NAME for folders")
    p.add_argument("--split", default="test", help="the real split to compare against (default: test)")
    p.add_argument("--space", action="append", default=[], metavar="FOLDER",
                   help="also measure in this local transformers encoder's space (DINOv2, CLIP); repeatable")
    p.add_argument("--inception", default=None, metavar="PATH", help="the FID Inception weights file")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS diversity")
    p.add_argument("--limit", type=int, default=None, help="reference: a fixed random subset of this many images")
    p.add_argument("--min-fid", type=int, default=MIN_FID, help="fewest images FID is computed on")
    p.add_argument("--out", default=None, help="JSON file (default: a run's metrics.json, else stdout: one JSON "
                                              "document, keyed by target when several go there)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-root", default=None)
    a = p.parse_args(argv)
    targets, kv = split_args(a.targets)
    targets = list(dict.fromkeys(targets))  # a target named twice is measured once
    for_stdout = [t for t in targets if a.out is None and not is_run_dir(t)]
    # stdout that holds the JSON holds nothing else (`... > m.json` must parse): the summary goes to stderr
    text = sys.stderr if for_stdout else sys.stdout
    printed: dict[str, dict] = {}
    status = 0
    try:
        unknown = set(kv) - {"dataset"}
        if unknown:
            raise ConfigError(f"unknown option {', '.join(sorted(unknown))}=; valid: dataset=")
        if not targets:
            raise ConfigError("give a run directory, a set file or a folder of images")
        if a.limit is not None and a.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {a.limit}")
        if a.min_fid < 2:
            raise ConfigError(f"--min-fid must be >= 2 (a covariance needs two images), got {a.min_fid}")
        if a.out and len(targets) > 1:
            raise ConfigError("--out takes one target at a time")
        check_device(a.device, "--device")
        for t in targets:
            target = load_target(t, kv.get("dataset"), a.data_root)
            m = image_metrics(target.unit, target.labels, target.dataset, a.split, ("inception", *a.space),
                              not a.no_lpips, a.data_root, a.device, a.inception, a.limit, a.min_fid)
            m["source"] = str(t)
            if t in for_stdout:
                printed[t] = m
            else:
                print(f"wrote {_write(m, target.run_dir, a.out)}", file=text)
            for line in summary_lines(m):
                print(f"{t}: {line}", file=text)
            overall = m["inception"]["overall"]
            if overall["fid"] is None:  # the KID above still stands
                print(f"{PROG}: error: {t}: {_fid_unavailable(overall, a.min_fid)}", file=sys.stderr)
                status = 2
    except ConfigError as e:
        print(f"{PROG}: error: {message(e, '--data-root DIR')}", file=sys.stderr)
        status = 2
    finally:  # what was measured before an error is still printed, and still one document
        if printed:
            print(json.dumps(printed if len(for_stdout) > 1 else next(iter(printed.values())), indent=2))
    return status


def _fid_unavailable(overall: dict, min_fid: int) -> str:
    """Why FID is missing; --min-fid is suggested only where it can help, too few images (not a
    covariance square root that went complex, genprior/metrics/fid.py: lowering the floor cannot fix that)."""
    too_few = min(overall["n"], overall["n_ref"]) < min_fid
    return overall["fid_unavailable"] + (" (use --min-fid to lower it)" if too_few else "")


def _write(m: dict, run_dir: Path | None, out: str | None) -> Path:
    """Into --out (as is), else into the run's metrics.json (under "images", beside the accuracy)."""
    path = Path(out) if out else run_dir / "metrics.json"
    if run_dir is not None and out is None:  # merge into the run's metrics, keep the accuracy
        merged = json.loads(path.read_text()) if path.is_file() else {}
        merged["images"] = m
        m = merged
    write_json(path, m)
    return path


if __name__ == "__main__":
    sys.exit(main())
