"""run.py under bad input, an attacker's pickle, a second run, SIGKILL and SIGTERM.

Every refusal is one line, exit code 2, no traceback, and leaves the run directory
byte for byte as it was."""
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genprior import config, run
from tests.conftest import needs_fashion_mnist
from tests.runs import RUN_PY, child_env

pytestmark = needs_fashion_mnist
BASE = ["pixel=dm", "ipc=1", "iterations=2", "objective.batch_real=16", "objective.net_kwargs={width:16,depth:3}",
        "eval.enabled=false"]


def checksums(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def start(args, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, RUN_PY, *args, f"run_dir={run_dir}"], env=child_env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(run_dir: Path, text: str, proc: subprocess.Popen, what: str = "log.txt", timeout: float = 300):
    deadline = time.time() + timeout
    path = run_dir / what
    while time.time() < deadline and proc.poll() is None:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path} (exit {proc.poll()})")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run, written by its own process (the set's bytes come from a fresh interpreter)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    subprocess.run([sys.executable, RUN_PY, *BASE, f"run_dir={out}"], env=child_env(), check=True, capture_output=True)
    return out


def refused(args, capsys) -> str:
    assert run.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genprior.run: error: ") and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- bad values, on a directory holding a run

@pytest.mark.parametrize("bad, message", [
    (["objective.batch_real=0"], "objective.batch_real must be an integer >= 1, got 0"),
    (["synset.optim.images.lr=abc"], "synset.optim.images.lr must be a number >= 0, got 'abc'"),
    (["synset.optim.images.lr=-1"], "synset.optim.images.lr must be a number >= 0, got -1.0"),
    (["synset.optim.images.momentum=1.5"], "synset.optim.images.momentum must be a number >= 0 and < 1"),
    (["threads=0"], "threads must be an integer >= 1 (or null), got 0"),
    (["threads=abc"], "threads must be an integer >= 1 (or null), got 'abc'"),
    (["mixed_precision=fp8"], "mixed_precision=fp8 is not supported (no loss scaling in the distillation backward); "
                              "valid: no, bf16"),
    (["mixed_precision=fp16"], "mixed_precision=fp16 is not supported"),
    (["mixed_precision=fp4"], "mixed_precision must be one of no, bf16, fp16, fp8 (or null), got 'fp4'"),
    (["protocol.runs=0"], "protocol.runs must be an integer >= 1, got 0"),
    (["protocol.epochs=0"], "protocol.epochs must be an integer >= 1, got 0"),
    (["protocol.lr=-0.01"], "protocol.lr must be a number > 0, got -0.01"),
    (["eval.enabled=maybe"], "eval.enabled must be true or false, got 'maybe'"),
    (["eval.every=-1"], "eval.every must be an integer >= 0, got -1"),
    (["objective.compile=yes"], "objective.compile must be true or false, got 'yes'"),
    (["objective.net=resnet99"], "objective.net must be one of alexnet"),
    (["dataset.space=unit"], "dataset.space must be one of normalized, zca, got 'unit'"),
    (["+objective.batch_rael=3"], "unknown key objective.batch_rael; valid:"),
    (["glad=dm"], "one preset at a time, got pixel=dm and glad=dm"),
    (["seed=-1"], "seed must be an integer >= 0, got -1"),
    (["name=x${ipcc}"], "bad interpolation in name: Interpolation key 'ipcc' not found"),
    (["synset.optim.images.lr=3.0"], "holds a run with another config (synset.optim.images.lr=5.0->3.0)"),
])
def test_bad_value_is_one_line_and_changes_nothing(bad, message, finished, capsys):
    before = checksums(finished)
    err = refused([*BASE, *bad, f"run_dir={finished}"], capsys)
    assert message in err, err
    assert checksums(finished) == before


@pytest.mark.parametrize("value", ["no", "off", "'false'", "0", "1", "''", "false"])
def test_no_value_but_true_unpickles(value, tmp_path, capsys):
    # a payload that would create `marker` when unpickled, behind every spelling of "no" (and 1, truthy)
    marker = tmp_path / "pwned"
    payload = tmp_path / "net.pkl"
    payload.write_bytes(pickle.dumps(_Payload(str(marker))))
    checkout = tmp_path / "checkout"
    for d in ("dnnlib", "torch_utils"):
        (checkout / d).mkdir(parents=True)
    out = tmp_path / "run"
    args = ["glad=dm", "eval.enabled=false", f"synset.generator={payload}", f"synset.code_dir={checkout}",
            f"synset.allow_pickle={value}", f"run_dir={out}"]
    err = refused(args, capsys)
    assert ("synset.allow_pickle must be true or false" in err) or ("refusing to load" in err), err
    assert not marker.exists() and not out.exists()
    # the control: consent does unpickle (the marker appears), so the refusals above were real
    assert run.main(args[:-2] + ["synset.allow_pickle=true", f"run_dir={out}"]) == 2
    assert marker.exists()


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_run_distilled_through_another_network_does_not_resume(finished, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(finished, other)
    state = torch.load(other / "checkpoint.pt", weights_only=True)
    assert state["net_digest"] == run.objective_net_digest(config.compose(BASE), config.compose(BASE).dataset)
    state["net_digest"] = "0" * 12  # as if objective.net had changed since (same name, same config)
    torch.save(state, other / "checkpoint.pt")
    before = checksums(other)
    err = refused([*BASE, "iterations=3", f"run_dir={other}"], capsys)
    assert "distilled through another version of objective.net=convnet (network digest 000000000000" in err, err
    assert checksums(other) == before


# ---------------------------------------------------------------- the run directory itself

def test_run_dir_that_is_a_file_or_cannot_be_written(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("mine")
    assert "is a file, not a directory" in refused([*BASE, f"run_dir={f}"], capsys)
    assert "cannot be written" in refused([*BASE, f"run_dir={f / 'sub'}"], capsys)
    assert f.read_text() == "mine"


def test_outputs_of_another_run_are_not_overwritten_without_a_checkpoint(finished, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(finished, other)
    (other / "checkpoint.pt").unlink()  # the identity is config.yaml, not the checkpoint
    before = checksums(other)
    assert "another config" in refused([*BASE, "seed=1", f"run_dir={other}"], capsys)
    (other / "config.yaml").unlink()  # files, but no config: not this run's
    before = checksums(other)
    assert "holds files (curve.jsonl, dd_ranking, grid.png, images ...) but no config.yaml" in \
        refused([*BASE, f"run_dir={other}"], capsys)
    assert checksums(other) == before


def test_a_second_run_is_refused_while_the_first_holds_the_directory(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*BASE[:2], "iterations=10000", *BASE[3:], "checkpoint_every=2", "log_every=1"]
    first = start(args, out)
    try:
        wait_for(out, "step 3", first)
        err = refused([*args, f"run_dir={out}"], capsys)
        assert f"is in use by pid {first.pid} on" in err
        first.send_signal(signal.SIGKILL)  # the kernel drops a dead holder's lock
        first.wait()
    finally:
        first.kill()
    at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert run.main([*BASE[:2], f"iterations={at + 1}", *BASE[3:], "checkpoint_every=2", "log_every=1",
                     f"run_dir={out}"]) == 0
    assert f"resuming at step {at}/{at + 1}" in (out / "log.txt").read_text()


@pytest.mark.parametrize("minutes, saved", [(0, [3]), (1e-9, [1, 2, 3])])
def test_a_checkpoint_is_also_due_by_the_clock(tmp_path, monkeypatch, minutes, saved):
    # checkpoint_every far away: only the clock (checkpoint_minutes, here every step) or the last step saves
    steps = []
    save = run.save_checkpoint
    monkeypatch.setattr(run, "save_checkpoint", lambda path, step, *a: (steps.append(step), save(path, step, *a)))
    assert run.main([*BASE[:2], "iterations=3", *BASE[3:], "checkpoint_every=10000", f"checkpoint_minutes={minutes}",
                     f"run_dir={tmp_path / 'run'}"]) == 0
    assert steps == saved


def test_sigterm_saves_the_finished_steps_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    args = [*BASE[:2], "iterations=10000", *BASE[3:], "checkpoint_every=10000", "log_every=1"]
    proc = start(args, out)
    wait_for(out, "step 3 ", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == ("genprior.run: stopped by SIGTERM (exit 143); "
                                            "rerun the same command to resume"), err[-2000:]
    at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]  # no checkpoint but the one SIGTERM wrote
    assert at >= 3 and f"stopped by SIGTERM after step {at} " in (out / "log.txt").read_text()
    assert run.main([*BASE[:2], f"iterations={at + 2}", *BASE[3:], "log_every=1", f"run_dir={out}"]) == 0
    assert f"resuming at step {at}/{at + 2}" in (out / "log.txt").read_text()
    steps = [json.loads(line)["step"] for line in (out / "curve.jsonl").read_text().splitlines()]
    assert steps == list(range(1, at + 3))


def test_killing_the_accelerate_launcher_stops_the_run_as_sigterm_does(tmp_path):
    # accelerate's single-process launcher does not pass SIGTERM on; the run asks Linux for it (genprior/host.py)
    out = tmp_path / "run"
    args = [*BASE[:2], "iterations=10000", *BASE[3:], "checkpoint_every=10000", "log_every=1"]
    with open(tmp_path / "stderr.txt", "w") as stderr:  # the launcher's and the run's: a failure shows why
        launcher = subprocess.Popen([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
                                     "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                                     RUN_PY, *args, f"run_dir={out}"], env=child_env(), stdout=subprocess.DEVNULL,
                                    stderr=stderr)
    wait_for(out, "step 2 ", launcher)
    worker = int((out / "run.lock").read_text().split()[1])  # "pid N on host ...": the run, not the launcher
    try:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=60)
        deadline = time.time() + 60
        while "stopped by SIGTERM" not in (out / "log.txt").read_text() and time.time() < deadline:
            time.sleep(0.1)
        assert (out / "checkpoint.pt").is_file(), (tmp_path / "stderr.txt").read_text()[-3000:]
        at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
        assert at >= 2 and f"stopped by SIGTERM after step {at} " in (out / "log.txt").read_text()
    finally:
        try:
            os.kill(worker, signal.SIGKILL)  # an orphan, if the run did not end
        except ProcessLookupError:
            pass


def test_a_fresh_start_clears_the_curve_of_a_run_killed_before_its_first_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert run.main([*BASE, "log_every=1", f"run_dir={out}"]) == 0
    (out / "checkpoint.pt").unlink()  # as if killed before its first checkpoint: the curve is there, no state
    with open(out / "curve.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # and its disk filled mid-line
    assert run.main([*BASE, "log_every=1", f"run_dir={out}"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "curve.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_divergence_before_the_first_checkpoint_says_there_is_none(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*BASE[:2], "iterations=30", *BASE[3:], "checkpoint_every=100", "synset.optim.images.lr=1e25",
            f"run_dir={out}"]
    assert run.main(args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("genprior.run: diverged:") and "no checkpoint yet" in last, last
    assert not (out / "checkpoint.pt").exists()
    assert "diverged: loss" in (out / "log.txt").read_text()


def test_the_same_command_gives_the_same_bytes(finished, tmp_path):
    again = tmp_path / "again"
    subprocess.run([sys.executable, RUN_PY, *BASE, f"run_dir={again}"], env=child_env(), check=True, capture_output=True)
    digest = [hashlib.sha256((d / "synset.safetensors").read_bytes()).hexdigest() for d in (finished, again)]
    assert digest[0] == digest[1]


def test_a_claim_that_loses_a_race_for_a_new_directory_leaves_the_winners_lock(tmp_path):
    """Two starts that both find no directory both see it as theirs to create; the one whose lock
    is refused must not take the directory (and the winner's run.lock) away with it."""
    from genprior.errors import ConfigError
    from genprior.rundir import LOCK, RunDirectory

    path = tmp_path / "run"
    winner = RunDirectory.claim(path, {"ipc": 1})
    loser = RunDirectory(path, open(path / LOCK, "a+"), created=True, lock_created=True)  # it saw no directory
    try:
        with pytest.raises(ConfigError, match="is in use by"):
            loser._lock()
        loser.abandon()
        assert (path / LOCK).is_file() and str(os.getpid()) in (path / LOCK).read_text()
    finally:
        winner.release()


def test_where_the_data_comes_from_and_how_much_memory_a_step_takes_do_not_block_a_resumption():
    from genprior.rundir import config_diff

    have = {"ipc": 1, "chunk": 50, "log_with": None, "synset": {"optim": {"images": {"lr": 5.0}}},
            "dataset": {"name": "fashion_mnist", "root": None, "download": True, "space": "normalized"}}
    same = {**have, "chunk": 10, "log_with": "tensorboard",
            "dataset": {**have["dataset"], "root": "/data", "download": False}}
    assert config_diff(have, same) == ""
    other = {**have, "dataset": {**have["dataset"], "space": "zca"}, "synset": {"optim": {"images": {"lr": 3.0}}}}
    assert config_diff(have, other) == "dataset.space='normalized'->'zca', synset.optim.images.lr=5.0->3.0"


def test_a_checkpoint_that_is_a_tensor_file_of_something_else_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert run.main([*BASE, f"run_dir={out}"]) == 0
    torch.save({"weights": torch.zeros(2)}, out / "checkpoint.pt")
    capsys.readouterr()
    err = refused([*BASE, f"run_dir={out}"], capsys)
    assert "is not a genprior checkpoint (no config, step or synset)" in err
    # a genprior checkpoint whose set holds other tensors (an older version's layout): one line too
    assert run.main([*BASE, "iterations=3", f"run_dir={tmp_path / 'b'}"]) == 0
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    state["synset"] = {"generator.weight": torch.zeros(2), **state["synset"]}
    torch.save(state, tmp_path / "b" / "checkpoint.pt")
    capsys.readouterr()
    err = refused([*BASE, "iterations=4", f"run_dir={tmp_path / 'b'}"], capsys)
    assert "checkpoint.pt holds a set of other tensors than this one" in err and "generator.weight" in err


@pytest.mark.parametrize("bad, message", [
    ("+objective.experts.net=resnet18", "objective.experts.net is the run's objective.net"),
    ("+objective.experts.dsa=none", "objective.experts.dsa is the run's objective.dsa"),
    ("+objective.experts.device=cuda", "unknown key objective.experts.device; valid: batch, dir, "),
])
def test_expert_keys_a_run_decides_or_never_reads_are_refused(bad, message, tmp_path, capsys):
    """Never accepted and silently overridden: the experts train the network the student unrolls."""
    err = refused(["pixel=mtt", bad, f"run_dir={tmp_path / 'r'}"], capsys)
    assert message in err, err
    assert not (tmp_path / "r").exists()


def test_a_learned_lr_that_is_no_longer_positive_stops_the_run():
    from genprior.errors import Diverged

    run.check_learned_lr(torch.tensor(1e-3), 5, lambda: "checkpoint at step 4")  # positive: goes on
    with pytest.raises(Diverged, match=r"learned lr fell to -0.002 at step 5: lower synset.optim.lr.lr; "
                                       r"last good checkpoint at step 4"):
        run.check_learned_lr(torch.tensor(-2e-3), 5, lambda: "checkpoint at step 4")


def test_a_run_that_fails_in_its_set_up_leaves_no_directory_that_would_refuse_the_fix(tmp_path, capsys):
    """An expert diverges while the run builds its experts: the config and log it had written go
    again, so the rerun with the lower lr the message asks for is not refused as another run's."""
    args = ["pixel=mtt", "ipc=1", "iterations=1", "objective.net_kwargs={width:8,depth:2}",
            "objective.experts.num_experts=1", "objective.experts.epochs=2", "objective.experts.images_per_epoch=256",
            "objective.expert_epochs=1", "objective.max_start_epoch=1", f"objective.experts.dir={tmp_path / 'e'}",
            "eval.enabled=false", f"run_dir={tmp_path / 'r'}"]
    assert run.main([*args, "objective.experts.lr=1e12"]) == 1
    assert "lower the experts' lr" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
