"""Distill with a preset and record the protocol's verdict with its command and wall times.

    python bench/distill.py pixel=dm ipc=10
    python bench/distill.py pixel=dc ipc=1 objective.compile=false
    python bench/distill.py --launch "accelerate launch --mixed_precision bf16" pixel=mtt ipc=10

Runs genprior/run.py (as a subprocess, optionally under a launcher) into
runs/bench/<name>/, then writes bench/results/distill_<name>.json: the command, the
wall time of distillation and of evaluation, the final-epoch accuracies (mean, std,
runs) beside the random-real and full-data baselines, and the loss curve's ends.
A rerun of the same command resumes an unfinished run directory, and does nothing once
bench/results/distill_<name>.json exists (--force runs and records it again), unless that
result is stale: marked superseded, judged by networks other than today's (metrics.json
records their digests, genprior/evaluate.py network_digests; a result too old to record them
counts as stale), distilled with a generator whose file has changed since (metrics.json's
prior_digest; a GAN or diffusion result too old to record one counts as stale), or made with
a config its command no longer composes (a preset's lr changed: every key both configs have
must agree). A stale result is set aside (a `.superseded` name). Where what changed decides
only the judging (a judge network other than the one the objective distilled through, an
eval.* or protocol.* key) the run directory stays, and the rerun resumes the finished set and
judges it again (rows the change leaves alone come from judged/); otherwise the run directory
is set aside too and the set is distilled afresh.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from genprior.files import write_json
from genprior.rundir import RESUMABLE_KEYS, under
from resumable import short_name, slug  # bench/resumable.py (the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def stale(result: dict) -> str | None:
    """Why a recorded result is not a figure of today's code (None: it is one)."""
    found = staleness(result)
    return None if found is None else found[0]


def stale_result(path: str | None) -> str | None:
    """Why the result file a table's row was read from (a path from the repository root) is no
    figure of today's code (None: it is one): gone (set aside when its rerun started) or stale."""
    if path is None:
        return "the row does not name its result"
    if not (ROOT / path).is_file():
        return f"{path} is gone (set aside for a rerun)"
    return stale(json.loads((ROOT / path).read_text()))


def staleness(result: dict) -> tuple[str, bool] | None:
    """None if `result` is a figure of today's code, else (why, whether only its judging is
    stale: the set it judged is still today's set)."""
    if "superseded" in result:
        return "it is marked superseded", False
    if "networks" not in result:
        return "it does not record which networks judged it (it predates that record)", False
    from omegaconf import OmegaConf

    from genprior.evaluate import network_digests

    today = network_digests(result["networks"], result["dataset"], result["resolution"])
    changed = [m for m, d in result["networks"].items() if today[m] != d]
    config = OmegaConf.create(result.get("config", "{}"))
    synset_class = _synset_class(config)
    if synset_class is not None and synset_class.has_prior and not result.get("prior_digest"):
        return "it does not record the generator it was distilled with (it predates that record)", False
    if result.get("prior_digest") and prior_now(result["config"]) not in (None, result["prior_digest"]):
        return "the generator it was distilled with changed since (its prior digest)", False
    if changed:  # the objective's own network shaped the set; the other judges only judged it
        iterations = OmegaConf.select(config, "iterations")  # None: a record without its config cannot tell
        set_kept = iterations == 0 or (iterations is not None and OmegaConf.select(config, "objective.net") not in changed)
        return (f"the networks that judged it changed since ({', '.join(changed)})",
                set_kept and _judging_only(result))
    if changed := config_drift(result):
        return f"its command composes another config today ({changed})", _judging_only(result)
    return None


# keys a run directory resumes across (genprior/rundir.py) that change only how the set is judged
# (`iterations` is resumable too, but changes the set), and those that change nothing computed
JUDGING_KEYS = ("eval", "protocol")
UNCOMPARED = tuple(k for k in RESUMABLE_KEYS if k not in (*JUDGING_KEYS, "iterations"))


def _judging_only(result: dict) -> bool:
    """Whether every config key that drifted since `result` only decides the judging."""
    from genprior.errors import ConfigError

    try:
        return all(under(k, JUDGING_KEYS) for k in _drifted(result))
    except ConfigError:
        return False
# options added with a default that changed what the code computes: key -> the value every
# run made before the option existed behaved as (so those results are rerun, not reused)
BEHAVED_AS = {"synset.bound": False,  # HaBa's rendered values, unbounded until 2026-11-30
              "synset.views": "one",  # HaBa's steps rendered one hallucination per basis until 2026-12-01
              "synset.optim.lr.floor": None}  # no learned lr was held at a floor until 2026-12-01


def resumes(run_dir: Path, overrides: list[str]) -> bool:
    """Whether genprior/run.py would resume `run_dir` for `overrides` today (its config.yaml
    decides the same result: rundir.config_diff), rather than refuse it as another run's."""
    import yaml
    from omegaconf import OmegaConf

    from genprior.errors import ConfigError
    from genprior.config import compose
    from genprior.rundir import CONFIG, config_diff

    try:
        have = yaml.safe_load((run_dir / CONFIG).read_text())
        want = OmegaConf.to_container(compose([*overrides, f"run_dir={run_dir}"]), resolve=True)
    except (OSError, yaml.YAMLError, ConfigError):
        return False
    return isinstance(have, dict) and config_diff(have, want) == ""


def config_drift(result: dict) -> str:
    """The keys whose value in the config a result ran with differs from what its command
    composes today, as `key=then->now` ('' when none). Keys only one side has are left out:
    an option added since, at a default that keeps the old behaviour, changes nothing; one
    whose default changed it is compared as the value in BEHAVED_AS."""
    from genprior.errors import ConfigError

    try:
        drifted = _drifted(result)
    except ConfigError as e:
        return f"it no longer composes: {e}"
    shown = ", ".join(f"{k}={then!r}->{now!r}" for k, (then, now) in list(drifted.items())[:4])
    return shown + (" ..." if len(drifted) > 4 else "")


def _drifted(result: dict) -> dict[str, tuple]:
    """{key: (then, now)} for config_drift, sorted by key; ConfigError if the command no longer composes."""
    from omegaconf import OmegaConf

    from genprior.config import compose
    from genprior.rundir import flat

    if "command" not in result or "config" not in result:
        return {}  # nothing to compare with
    args, overrides = shlex.split(result["command"])[2:], []
    while args:  # bench/distill.py's own options are not overrides
        arg = args.pop(0)
        if arg in ("--name", "--launch"):
            args.pop(0)
        elif arg != "--force":
            overrides.append(arg)
    today = flat(OmegaConf.to_container(compose(overrides), resolve=True))
    then = flat(OmegaConf.to_container(OmegaConf.create(result["config"]), resolve=True))
    then = {**{k: v for k, v in BEHAVED_AS.items() if k in today}, **then}
    return {k: (then[k], today[k]) for k in sorted(then.keys() & today.keys())
            if not under(k, UNCOMPARED) and then[k] != today[k]}


def prior_now(config: str) -> str | None:
    """Today's digest of the generator a result's config.yaml names, as its synset computes it
    (Synset.prior_digest_now); None where telling takes more than loading a file: a Minimax
    fine-tune is built from its base UNet, and metrics.json records the fine-tune's digest, so a
    retrained base goes unnoticed here (set the result aside by hand: `"superseded"`)."""
    from omegaconf import OmegaConf

    config = OmegaConf.create(config)
    cls = _synset_class(config)
    if cls is None:
        return None
    return cls.prior_digest_now(OmegaConf.to_container(config.synset, resolve=True))


def _synset_class(config):
    """The synset class a result's config names (None: a record without one)."""
    from omegaconf import OmegaConf

    from genprior.synsets import SYNSETS

    return SYNSETS.get(OmegaConf.select(config, "synset.kind"))


def result_file(name: str) -> Path:
    """Where the run NAME leaves its result: bench/results/distill_NAME.json, NAME shortened to
    fit a file name (bench/resumable.py, short_name) as its run folder is."""
    return RESULTS / f"distill_{short_name(name)}.json"


def recorded(name: str) -> str:
    """result_file(NAME) as the tables record it, relative to the repository."""
    return result_file(name).relative_to(ROOT).as_posix()


def distilled(name: str, overrides: list[str]) -> dict:
    """This script as a subprocess, `--name NAME OVERRIDES` (it resumes the run, or reuses a
    result that is still today's): the result it leaves, result_file(NAME)."""
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--name", name, *overrides], check=True, cwd=ROOT)
    return json.loads(result_file(name).read_text())


def value_range(set_file: Path) -> dict:
    """Where the set's values lie (min, max, std; real images normalized: about -0.8..2.0, std 1):
    a set that left the data's range trains networks without a normalization layer badly."""
    from genprior.setfile import load_set

    x = load_set(set_file).images.double()
    return {"min": round(x.min().item(), 3), "max": round(x.max().item(), 3), "std": round(x.std().item(), 3)}


def set_aside(path: Path) -> Path:
    """Rename `path` to the first free <name>.superseded[-k][.json], keeping it for the record
    (names hold dots of their own, `protocol.runs-3`: only .json counts as a suffix)."""
    stem, ext = (path.name[:-5], ".json") if path.name.endswith(".json") else (path.name, "")
    for k in range(1, 1000):
        target = path.with_name(f"{stem}.superseded{'' if k == 1 else f'-{k}'}{ext}")
        if not target.exists():
            return path.rename(target)
    raise FileExistsError(f"no free .superseded name beside {path}")


# genprior/run.py's one-line refusals of a run directory it cannot resume: a set made through
# another generator or network (check_prior, load_checkpoint), of another config (a preset changed
# since: rundir.RunDirectory.claim, load_checkpoint), or of other tensors (an older synset)
REFUSALS = ("another version of its generator", "another version of objective.net=", "holds a run with another config",
            "holds a set of other tensors")


def launch(cmd: list[str], env: dict) -> str | None:
    """Run genprior/run.py, its stderr passed through line by line; the refusal line (REFUSALS)
    if it refused its run directory, else None. Any other failure raises CalledProcessError.
    (Any line, not the last: `accelerate launch` adds its own lines after a failed process.)
    Stopped itself (Ctrl-C, SIGTERM), this goes on passing the run's lines through until the run
    has ended: the run stops and checkpoints on its own signal, or runs to its end, and never
    dies of a pipe closed under it."""
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, bufsize=1) as proc:
        refusal = None
        try:
            for line in proc.stderr:
                sys.stderr.write(line)
                if any(r in line for r in REFUSALS):
                    refusal = line.strip()
        except BaseException:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C is the run's to take
            try:
                for line in proc.stderr:
                    sys.stderr.write(line)
                proc.wait()
            finally:
                signal.signal(signal.SIGINT, previous)
            raise
    if proc.returncode and refusal:
        return refusal
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return None


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # as Ctrl-C: launch() waits for the run it passes through


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launch", default="", help="launcher prefix, e.g. 'accelerate launch --num_processes 2'")
    p.add_argument("--name", default=None, help="result name (default: from the overrides)")
    p.add_argument("--force", action="store_true", help="run and record again although the result exists")
    p.add_argument("overrides", nargs="+")
    a = p.parse_args()
    name = short_name(a.name or "_".join(slug(o) for o in a.overrides))
    out = result_file(name)
    run_dir = ROOT / "runs" / "bench" / name
    if out.exists():
        found = staleness(json.loads(out.read_text()))
        if found is None and not a.force:  # a finished run would evaluate its set again: minutes for nothing
            print(f"{name}: done ({out.relative_to(ROOT)}); --force to run it again")
            return
        if found is not None:  # keep the record; the set too where only its judging changed
            why, judging_only = found
            print(f"{name}: {out.relative_to(ROOT)} is stale: {why}; moved to {set_aside(out).name}", flush=True)
            if run_dir.exists() and not (judging_only and resumes(run_dir, a.overrides)):
                print(f"{name}: its run directory moved to {set_aside(run_dir).name}", flush=True)
            elif run_dir.exists():
                print(f"{name}: only its judging changed: the run resumes its set and judges it again", flush=True)
    # judged rows land in the repository (comparisons.sh sets the same): a run directory set
    # aside keeps none of them, and a machine that loses runs/ retrains none of them
    env = {**os.environ, "GENPRIOR_JUDGED_DIR": os.environ.get("GENPRIOR_JUDGED_DIR", str(RESULTS / "judged"))}
    cmd = shlex.split(a.launch) or [sys.executable]
    cmd += [str(ROOT / "genprior" / "run.py"), *a.overrides, f"run_dir={run_dir}"]
    t0 = time.time()
    refused = launch(cmd, env)
    if refused and run_dir.exists():  # a checkpoint of an older generator or network: start afresh
        print(f"{name}: genprior/run.py refused its run directory ({refused}); "
              f"moved to {set_aside(run_dir).name}, distilling afresh", flush=True)
        refused = launch(cmd, env)
    if refused:
        raise SystemExit(f"{name}: genprior/run.py refused: {refused}")
    wall = time.time() - t0
    log = (run_dir / "log.txt").read_text()
    # one "distilled steps A-B (N steps) in Ts" line per session that finished; a session
    # stopped by a signal logs "stopped by SIGINT|SIGTERM after step N (this session ran A-B in Ts)"
    # (earlier versions: "interrupted after steps A-B (Ts)"), one that was killed nothing
    distill_s = [float(m) for m in re.findall(r"distilled (?:steps \d+-\d+ \()?\d+ steps\)? in ([\d.]+)s", log)]
    interrupted_s = [float(m) for m in re.findall(r"(?:interrupted after steps \d+-\d+ \(|this session ran "
                                                  r"\d+-\d+ in )([\d.]+)s\)", log)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    curve_file = run_dir / "curve.jsonl"  # none for a set that takes no step (the sample presets)
    curve = [json.loads(line) for line in curve_file.read_text().splitlines()] if curve_file.is_file() else []
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
        "dataset": metrics["dataset"], "resolution": metrics["resolution"], "networks": metrics["networks"],
        "prior_digest": metrics.get("prior_digest"),
        "storage": metrics.get("storage"), "loss_first_last": [losses[0], losses[-1]] if losses else None,
        "images": metrics.get("images"),
        "values": value_range(run_dir / "synset.safetensors"),
        "config": (run_dir / "config.yaml").read_text(),
    }
    write_json(out, result)  # atomic: a kill leaves the old record or the new one
    accs = ", ".join(f"{m} {s['mean']:.2f} +- {s['std']:.2f}" for m, s in metrics["synthetic"].items())
    print(f"{name}: {accs} %; distill {distill_seconds(result):.0f} s; wrote {out}")


def distill_seconds(result: dict) -> float:
    """What a recorded set cost to distill: every session that reached the end plus every one
    stopped by a signal (each checkpoints where it stops, so no step is counted twice). A
    session that was killed outright logs nothing and is missing from both."""
    return round(sum(result["distill_s"]) + sum(result.get("interrupted_s") or []), 1)


if __name__ == "__main__":
    main()
