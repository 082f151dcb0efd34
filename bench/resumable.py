"""Benches made of parts that take minutes to hours each: run what is missing, keep what is done.

A part is (name, job); job() returns its figures. After every part the results file is
rewritten, so an interrupted bench loses at most the part it was in, and a rerun of the
same command skips the finished ones.
"""
from __future__ import annotations

import hashlib
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from genprior.files import write_json
RESULTS = Path(__file__).resolve().parent / "results"


def slug(override: str) -> str:
    """An override as part of a file or run name: `protocol.runs=3` -> `protocol.runs-3`."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", override)


def tag(overrides: list[str]) -> str:
    """`_<slug>` per override: what run names and result keys append, so reduced protocols never mix."""
    return "".join("_" + slug(o) for o in overrides)


def short_name(name: str, limit: int = 240) -> str:
    """A run or result name that fits a file name (255 bytes with `distill_` and `.json`): a
    longer one keeps its first characters and gains a digest of the whole, so names stay
    distinct, and names within the limit (every result recorded so far) stay as they were."""
    if len(name) <= limit:
        return name
    return f"{name[:limit - 13]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def command() -> str:
    return "python " + " ".join(shlex.quote(x) for x in sys.argv)


def machine(**extra) -> dict:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), **extra}


def run_parts(parts: list[tuple[str, Callable[[], dict]]], out: Path, meta: dict,
              show: Callable[[dict], str] = json.dumps, key: str | None = None) -> dict:
    """Run the parts `out` lacks; each entry: figures, wall_s, the command, `meta`.

    `key` names what the figures depend on beyond the part's name (a generator's digest): a
    part recorded under another key (or none) is measured again, and the old entry stays in
    the file as `<name> (key <old key>)`, so a retrained generator never inherits figures."""
    results = json.loads(out.read_text()) if out.is_file() else {}
    for name, job in parts:
        if name in results and results[name].get("key") == key:
            print(f"{name}: done earlier, kept")
            continue
        if name in results:
            old_key = results[name].get("key") or "unrecorded"
            results[f"{name} (key {old_key})"] = results.pop(name)
            print(f"{name}: recorded for another key ({old_key}), measuring again", flush=True)
        t0 = time.time()
        figures = job()
        results[name] = {"figures": figures, "wall_s": round(time.time() - t0, 1), "command": command(), **meta,
                         **({"key": key} if key is not None else {})}
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, results)
        print(f"{name}: {show(figures)} ({results[name]['wall_s']:.0f} s)", flush=True)
    return results


def rows_in_subprocesses(script: str, configs: list[list[str]], out: Path, show: Callable[[dict], str]) -> list[dict]:
    """One fresh process per configuration (`python script --one ARGS...`, which prints its row
    as the last line of JSON), so each peak memory is its own; `out` is rewritten after every
    row, so an interrupted bench keeps what it measured. Rows of other configurations already
    in `out` stay (each row records its `args` and command): several invocations fill one
    file. A failing configuration is reported and skipped."""
    earlier = json.loads(out.read_text()).get("rows", []) if out.is_file() else []
    rows = [r for r in earlier if r.get("args") not in configs]
    for args in configs:
        r = subprocess.run([sys.executable, script, "--one", *args], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{' '.join(args)}: failed\n{r.stderr[-1500:]}", file=sys.stderr)
            continue
        rows.append(dict(json.loads(r.stdout.strip().splitlines()[-1]), args=args, command=command()))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, {"command": command(), **machine(), "rows": rows})
        print(show(rows[-1]), flush=True)
    print(f"wrote {out}")
    return rows
