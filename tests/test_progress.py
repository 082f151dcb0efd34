"""Progress in a log file: whole lines, not carriage-return redraws."""
import io
import re
import os
import subprocess
import sys
from pathlib import Path

from genprior import run
from genprior.progress import progress
from tests.conftest import needs_fashion_mnist


def test_a_file_gets_whole_lines_every_tenth_and_at_the_end(monkeypatch):
    monkeypatch.setenv("GENPRIOR_PROGRESS_EVERY", "3600")  # only the 10 % steps and the end
    out = io.StringIO()
    for _ in progress(range(40), desc="work", file=out):
        pass
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 10  # 4, 8, ... 40 of 40
    assert lines[0].startswith("work: 4/40 (10%)") and "left" in lines[0]
    assert lines[-1].startswith("work: 40/40 (100%)")


def test_a_resumed_bar_estimates_from_its_own_pace(monkeypatch):
    monkeypatch.setenv("GENPRIOR_PROGRESS_EVERY", "3600")
    clock = iter(float(t) for t in range(1000))
    monkeypatch.setattr("tqdm.std.time", lambda: next(clock))  # one second per tqdm clock read
    out = io.StringIO()
    with progress(total=100, initial=80, desc="job", file=out) as bar:
        for _ in range(10):
            bar.update(1)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("job: 90/100"))
    elapsed, left = re.search(r"(\S+) elapsed, (\S+) left", line).groups()
    assert elapsed == left  # 10 done in this session, 10 to go: as long again (the old estimate: a ninth)


def test_a_stopped_bar_says_where_it_stopped_and_disabled_says_nothing(monkeypatch):
    monkeypatch.setenv("GENPRIOR_PROGRESS_EVERY", "3600")
    out = io.StringIO()
    with progress(total=100, desc="job", file=out) as bar:
        bar.update(5)
    assert out.getvalue().splitlines()[-1].startswith("job: 5/100 (5%)") and out.getvalue().endswith("(stopped)\n")
    quiet = io.StringIO()
    for _ in progress(range(5), desc="x", file=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""


@needs_fashion_mnist
def test_a_runs_log_file_shows_expert_building_distillation_and_evaluation(tmp_path):
    args = ["pixel=mtt", "ipc=1", "iterations=3", "objective.net_kwargs={width:16,depth:3}", "protocol=fast",
            "protocol.runs=1", "protocol.epochs=3", "protocol.models=[mlp]", "eval.baselines=false",
            "objective.experts.num_experts=1",
            "objective.experts.epochs=2", "objective.experts.images_per_epoch=512", "objective.syn_steps=2",
            "objective.expert_epochs=1", "objective.max_start_epoch=1", f"objective.experts.dir={tmp_path / 'e'}",
            f"run_dir={tmp_path / 'run'}"]
    with open(tmp_path / "out.log", "w") as log:
        subprocess.run([sys.executable, str(Path(run.__file__)), *args], stdout=log, stderr=subprocess.STDOUT,
                       env=dict(os.environ, OMP_NUM_THREADS="1", GENPRIOR_PROGRESS_EVERY="0"), check=True)
    text = (tmp_path / "out.log").read_text()
    assert "\r" not in text
    for line in ("expert 0: 2/", "pixel+mtt: 3/3 (100%)", "set mlp 1/1: 3/3 (100%)"):
        assert line in text, (line, text[-3000:])
    # the run's own log.txt has them too, time-stamped, from the set-up on
    logged = (tmp_path / "run" / "log.txt").read_text()
    assert logged.splitlines()[0].endswith("setting up pixel + mtt (what they build first, e.g. experts, a fine-tune, "
                                           "inversions, is built once and cached)")
    for line in ("expert 0: 2/", "pixel+mtt: 3/3 (100%)", "set mlp 1/1: 3/3 (100%)"):
        assert line in logged, (line, logged[-3000:])
    assert logged.index("expert 0: 2/") < logged.index("starting step 0/3") < logged.index("set mlp 1/1")
