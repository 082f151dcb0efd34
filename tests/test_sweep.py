"""Hydra multirun sweeps through run.py: one run directory per job, one summary, failures reported."""
import pytest

from genprior import config, run
from tests.test_data import fake_mnist


@pytest.fixture
def mnist(tmp_path):
    fake_mnist(tmp_path, n_train=60, n_test=20)
    return ["dataset=mnist", f"dataset.root={tmp_path}"]


def test_sweep_expands_like_hydra():
    jobs = config.sweep_jobs(["pixel=dc,dm", "ipc=1,10", "iterations=2", "run_dir=runs/x/${ipc}"])
    assert jobs == [["pixel=dc", "ipc=1", "iterations=2", "run_dir=runs/x/${ipc}"],
                    ["pixel=dc", "ipc=10", "iterations=2", "run_dir=runs/x/${ipc}"],
                    ["pixel=dm", "ipc=1", "iterations=2", "run_dir=runs/x/${ipc}"],
                    ["pixel=dm", "ipc=10", "iterations=2", "run_dir=runs/x/${ipc}"]]
    assert config.sweep_jobs(["seed=range(0,3)"]) == [["seed=0"], ["seed=1"], ["seed=2"]]


def test_sweep_makes_a_run_directory_per_job_and_one_summary(mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run.main(["-m", "pixel=dc,dm", "ipc=1", "iterations=2", "eval.enabled=false", *mnist]) == 0
    for name in ("pixel-dc-ipc1-seed0", "pixel-dm-ipc1-seed0"):
        assert (tmp_path / "runs" / "mnist" / name / "synset.safetensors").is_file()
    out = capsys.readouterr().out
    assert out.count("# sweep: 2 of 2 jobs done, 0 failed") == 1
    assert "| pixel-dc-ipc1-seed0 | mnist | pixel | dc | 1 | 2 | 0 |" in out
    assert "| pixel-dm-ipc1-seed0 | mnist | pixel | dm | 1 | 2 | 0 |" in out


def test_a_failing_job_is_reported_and_the_others_run(mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the fake MNIST has 6 images per class: ipc=7 passes the config checks and fails on the data
    assert run.main(["--multirun", "pixel=dm", "ipc=7,1", "iterations=1", "eval.enabled=false", *mnist]) == 1
    out = capsys.readouterr().out
    assert "# sweep: 1 of 2 jobs done, 1 failed" in out
    assert "- job 0 FAILED (pixel=dm ipc=7 " in out and "ipc" in out.split("FAILED", 1)[1]
    assert (tmp_path / "runs" / "mnist" / "pixel-dm-ipc1-seed0" / "synset.safetensors").is_file()
    assert not (tmp_path / "runs" / "mnist" / "pixel-dm-ipc7-seed0").exists()  # given back as it was found


def test_bad_input_in_any_job_stops_the_sweep_before_it_starts(mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run.main(["-m", "pixel=dm", "ipc=1,abc", "iterations=1", *mnist]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genprior.run: error: job 1 (pixel=dm ipc=abc")
    # two jobs writing one directory: refused, naming the way out
    assert run.main(["-m", "pixel=dm", "objective.batch_real=64,128", "iterations=1", *mnist]) == 2
    assert "would both write" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key", ["hydra.run.dir=elsewhere", "hydra.sweep.dir=x", "+hydra.job.chdir=true",
                                 "hydra/launcher=joblib"])
def test_hydra_keys_are_refused_naming_run_dir(key, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run.main(["pixel=dm", key]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run_dir=" in err[0]
    assert run.main(["-m", "pixel=dm", key]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_runs_every_job_under_two_processes_and_judges_each_set(mnist, tmp_path):
    from tests.runs import run_two_processes

    args = ["-m", "pixel=dc,dm", "ipc=1", "iterations=2", "objective.batch_real=16", "protocol=fast",
            "protocol.runs=1", "protocol.epochs=2", "eval.baselines=false", *mnist]
    r = run_two_processes(args, tmp_path / "${objective.kind}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("# sweep: 2 of 2 jobs done, 0 failed") == 1, r.stdout[-2000:]
    for kind in ("dc", "dm"):
        assert "(2 processes" in (tmp_path / kind / "log.txt").read_text()
        assert (tmp_path / kind / "metrics.json").is_file()
    assert "judging job 1" in r.stderr  # after the last job, when the other rank had left


def test_judging_a_finished_run_holds_its_directory(mnist, tmp_path, monkeypatch):
    from genprior.errors import ConfigError
    from genprior.rundir import RunDirectory

    monkeypatch.chdir(tmp_path)
    overrides = ["pixel=dm", "ipc=1", "iterations=1", "protocol=fast", "protocol.runs=1", "protocol.epochs=1",
                 "eval.baselines=false", "eval.enabled=false", "run_dir=r", *mnist]
    assert run.main(overrides) == 0
    cfg = config.compose([o.replace("eval.enabled=false", "eval.enabled=true") for o in overrides])
    resumed = RunDirectory.claim(tmp_path / "r", run.OmegaConf.to_container(cfg, resolve=True))  # a run on it meanwhile
    with pytest.raises(ConfigError, match="in use"):
        run.judge_finished(cfg, tmp_path / "r")
    assert not (tmp_path / "r" / "metrics.json").exists()
    resumed.release()
    run.judge_finished(cfg, tmp_path / "r")
    assert (tmp_path / "r" / "metrics.json").is_file()
