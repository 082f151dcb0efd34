"""tests/runs.py's two-process launch: one retry for a rank that aborts, and a report that says why."""
import textwrap

from tests.runs import run_two_processes

# Rank 1 aborts while `marker` is absent, then creates it: the first launch fails, a second succeeds.
ABORT_ONCE = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    marker = Path(sys.argv[1])
    if os.environ["RANK"] == "1" and not marker.exists():
        marker.touch()
        print("rank 1: aborting on purpose", file=sys.stderr, flush=True)
        os.abort()
""")


def test_a_rank_that_aborts_once_is_retried_and_both_launches_are_reported(tmp_path):
    script = tmp_path / "abort_once.py"
    script.write_text(ABORT_ONCE)
    r = run_two_processes([str(tmp_path / "marker")], tmp_path / "run", script=str(script))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rank 1: aborting on purpose" in r.stderr and "retried once" in r.stderr


def test_a_rank_that_always_aborts_fails_and_the_tail_says_why(tmp_path):
    script = tmp_path / "abort_always.py"
    script.write_text(ABORT_ONCE.replace("and not marker.exists()", ""))
    r = run_two_processes([str(tmp_path / "marker")], tmp_path / "run", script=str(script))
    assert r.returncode != 0
    assert "why a rank died" in r.stderr[-2000:] and "exitcode  : -6" in r.stderr[-2000:], r.stderr[-2000:]
