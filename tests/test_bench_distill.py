"""bench/distill.py reuses a recorded result only while it is a figure of today's code."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genprior.evaluate import network_digests
from genprior.setfile import save_set

@pytest.fixture
def distill(bench, monkeypatch, tmp_path):
    distill = bench("distill")
    monkeypatch.setattr(distill, "ROOT", tmp_path)
    monkeypatch.setattr(distill, "RESULTS", tmp_path / "bench" / "results")
    return distill


def record(**extra) -> dict:
    return {"dataset": "fashion_mnist", "resolution": 28,
            "networks": network_digests(["convnet"], "fashion_mnist", 28), **extra}


def test_a_result_is_stale_when_its_networks_changed_or_it_cannot_say(distill):
    assert distill.stale(record()) is None
    assert "convnet" in distill.stale(record(networks={"convnet": "92edece9b07f"}))
    old = record()
    del old["networks"]
    assert "predates" in distill.stale(old)
    assert "superseded" in distill.stale(record(superseded="judged with the previous ConvNet"))


def test_a_tables_row_is_stale_when_its_result_file_is_gone_or_stale(distill, tmp_path):
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    (results / "today.json").write_text(json.dumps(record()))
    (results / "old.json").write_text(json.dumps(record(superseded="made before the bound")))
    assert distill.stale_result("bench/results/today.json") is None
    assert "superseded" in distill.stale_result("bench/results/old.json")
    assert "gone" in distill.stale_result("bench/results/set_aside.json")
    assert "name" in distill.stale_result(None)


def test_set_aside_keeps_every_earlier_record(distill, tmp_path):
    f = tmp_path / "distill_a_protocol.runs-3.json"  # names hold dots: only .json is a suffix
    for _ in range(2):
        f.write_text("{}")
        distill.set_aside(f)
    run = tmp_path / "a_protocol.runs-3"
    run.mkdir()
    distill.set_aside(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a_protocol.runs-3.superseded", "distill_a_protocol.runs-3.superseded-2.json",
        "distill_a_protocol.runs-3.superseded.json"]


def test_a_stale_result_runs_afresh_and_a_current_one_is_reused(distill, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GENPRIOR_JUDGED_DIR", raising=False)
    calls = []

    def fake_run(cmd, env):  # what genprior/run.py leaves in its run directory
        calls.append(cmd)
        assert env["GENPRIOR_JUDGED_DIR"] == str(distill.RESULTS / "judged")  # rows land beside the results
        assert "GENPRIOR_JUDGED_DIR" not in os.environ  # for the run only, not for this process
        run_dir = Path(cmd[-1].split("=", 1)[1])
        assert not (run_dir / "stale.txt").exists(), "the stale run directory was resumed"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "log.txt").write_text(  # a session stopped by SIGTERM, then one that reached the end
            "stopped by SIGTERM after step 1 (this session ran 0-1 in 2.0s); checkpoint at step 1\n"
            "distilled steps 1-2 (1 steps) in 1.5s\n")
        (run_dir / "curve.jsonl").write_text('{"step": 0, "loss": 2.0}\n{"step": 1, "loss": 1.0}\n')
        (run_dir / "config.yaml").write_text("ipc: 1\n")
        save_set(run_dir / "synset.safetensors", torch.tensor([-1.0, 3.0]).view(2, 1, 1, 1).expand(2, 1, 28, 28),
                 torch.tensor([0, 1]), "fashion_mnist")
        (run_dir / "metrics.json").write_text(json.dumps(
            {"synthetic": {"convnet": {"mean": 70.0, "std": 0.5, "runs": [69.5, 70.5]}}, "protocol": "fast",
             "protocol_config": {"models": ["convnet"]}, **record()}))

    monkeypatch.setattr(distill, "launch", fake_run)
    monkeypatch.setattr(sys, "argv", ["distill.py", "pixel=dm", "ipc=1"])
    out = distill.RESULTS / "distill_pixel-dm_ipc-1.json"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(record(networks={"convnet": "0" * 12})))  # judged by an earlier network
    (tmp_path / "runs" / "bench" / "pixel-dm_ipc-1").mkdir(parents=True)
    (tmp_path / "runs" / "bench" / "pixel-dm_ipc-1" / "stale.txt").write_text("")
    distill.main()
    assert len(calls) == 1 and "is stale: the networks that judged it changed since (convnet)" in capsys.readouterr().out
    assert json.loads(out.read_text())["networks"] == record()["networks"]
    assert json.loads(out.read_text())["values"] == {"min": -1.0, "max": 3.0, "std": 2.001}  # 1568 values, n - 1
    assert distill.distill_seconds(json.loads(out.read_text())) == 3.5  # both sessions count
    assert json.loads((out.parent / "distill_pixel-dm_ipc-1.superseded.json").read_text())["networks"] == \
        {"convnet": "0" * 12}
    assert (tmp_path / "runs" / "bench" / "pixel-dm_ipc-1.superseded" / "stale.txt").is_file()
    distill.main()  # today's result: nothing runs again
    assert len(calls) == 1 and "done" in capsys.readouterr().out
    # a preset that takes no step (diffusion=sample) leaves no curve.jsonl: a result all the same
    monkeypatch.setattr(sys, "argv", ["distill.py", "--name", "sample", "pixel=dm", "ipc=1", "iterations=0"])
    def no_steps(cmd, env):
        fake_run(cmd, env)
        (Path(cmd[-1].split("=", 1)[1]) / "curve.jsonl").unlink()

    monkeypatch.setattr(distill, "launch", no_steps)
    distill.main()
    assert json.loads((distill.RESULTS / "distill_sample.json").read_text())["loss_first_last"] is None


def test_a_refused_run_directory_is_set_aside_and_distilled_afresh(distill, tmp_path, monkeypatch, capsys):
    """A kept run directory whose checkpoint genprior/run.py refuses (made through an older
    generator) costs a fresh distillation, not the bench part; any other failure still fails."""
    from types import SimpleNamespace

    from genprior.errors import ConfigError
    from genprior.run import check_prior

    from genprior.rundir import RunDirectory

    with pytest.raises(ConfigError) as e:  # the lines run.py writes are the ones the bench looks for
        check_prior({"prior_digest": "a"}, SimpleNamespace(prior_digest="b"), Path("/r"))
    refusal = str(e.value)
    assert any(r in refusal for r in distill.REFUSALS)
    (tmp_path / "claimed").mkdir()
    (tmp_path / "claimed" / "config.yaml").write_text("ipc: 1\n")
    with pytest.raises(ConfigError) as e:  # a preset changed since the directory's run
        RunDirectory.claim(tmp_path / "claimed", {"ipc": 2})
    assert any(r in str(e.value) for r in distill.REFUSALS)
    script = f"import sys; sys.stderr.write('loading\\n{refusal}\\n'); sys.exit(2)"
    assert distill.launch([sys.executable, "-c", script], dict(os.environ)) == refusal
    assert distill.launch([sys.executable, "-c", "pass"], dict(os.environ)) is None
    with pytest.raises(subprocess.CalledProcessError):  # exit 2 for another reason is a failure
        distill.launch([sys.executable, "-c", "import sys; sys.exit(2)"], dict(os.environ))
    run_dir = tmp_path / "runs" / "bench" / "x"
    run_dir.mkdir(parents=True)
    (run_dir / "old.txt").write_text("")
    seen = []

    def refuse_once(cmd, env):
        seen.append(sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else None)
        if len(seen) == 1:
            return refusal
        raise RuntimeError("second launch")  # the run itself: not needed here

    monkeypatch.setattr(distill, "launch", refuse_once)
    monkeypatch.setattr(sys, "argv", ["distill.py", "--name", "x", "pixel=dm", "ipc=1"])
    with pytest.raises(RuntimeError, match="second launch"):
        distill.main()
    assert seen == [["old.txt"], None]  # the second launch found no run directory: it starts afresh
    assert (run_dir.parent / "x.superseded" / "old.txt").is_file()
    assert "refused its run directory" in capsys.readouterr().out


def test_a_stopped_bench_passes_the_runs_lines_through_until_the_run_has_ended(distill, monkeypatch):
    """Ctrl-C (or SIGTERM) stopping bench/distill.py must not close the pipe under the run: the run
    stops on its own signal, checkpoints and says so, and a closed pipe would kill it mid-way."""
    script = "import sys, time\nfor i in range(3):\n    print(i, file=sys.stderr, flush=True); time.sleep(0.2)\n"
    seen = []

    def write(line):  # Ctrl-C arrives while the first line is passed on
        seen.append(line)
        if len(seen) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(sys.stderr, "write", write)
    with pytest.raises(KeyboardInterrupt):
        distill.launch([sys.executable, "-c", script], dict(os.environ))
    assert seen == ["0\n", "1\n", "2\n"]  # every line of the run, which ran to its end


def test_a_result_is_stale_when_its_generator_file_changed(distill, tmp_path):
    import torch

    from generators.io import save_generator
    from generators.stylegan2 import StyleGAN2
    from genprior.artifacts import tensor_digest

    def tiny(seed: int) -> StyleGAN2:
        torch.manual_seed(seed)
        return StyleGAN2(28, 1, 10, z_dim=8, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16)

    g, stem = tiny(0), tmp_path / "sg2"
    save_generator(g, stem)
    config = (f"synset:\n  kind: gan\n  generator: {stem}\n  code_dir: null\n  allow_pickle: false\n")
    result = record(prior_digest=tensor_digest(*g.state_dict().values()), config=config)
    assert distill.stale(result) is None
    save_generator(tiny(1), stem)  # retrained under the same name
    assert "generator it was distilled with changed" in distill.stale(result)
    assert distill.stale(record(config="synset:\n  kind: pixel\n")) is None  # nothing to compare: no prior
    # a GAN result too old to record its generator cannot say it was made with today's
    assert "does not record the generator" in distill.stale(record(config=config))


def test_only_a_result_whose_set_is_still_todays_keeps_its_run_directory(distill):
    """What changed decides whether the set is redistilled or only judged again."""
    from omegaconf import OmegaConf

    from genprior.config import compose

    command = "python bench/distill.py --name x pixel=dm ipc=1 iterations=3"
    config = OmegaConf.to_container(compose(["pixel=dm", "ipc=1", "iterations=3"]), resolve=True)
    as_made = lambda **extra: record(command=command, config=OmegaConf.to_yaml(config), **extra)
    vit = network_digests(["vit"], "fashion_mnist", 28)["vit"]
    # a judge the set was not distilled through changed: judged again, not distilled again
    assert distill.staleness(as_made(networks={"convnet": record()["networks"]["convnet"], "vit": "0" * 12}))[1]
    # the objective's own network changed: the set itself was shaped by the old one
    assert not distill.staleness(as_made(networks={"convnet": "0" * 12, "vit": vit}))[1]
    config["protocol"]["models"] = ["convnet", "mlp"]  # judged by more networks (a list value): judged again
    assert distill.staleness(as_made())[1]
    config["protocol"]["models"] = ["convnet", "alexnet", "vit", "resnet18", "vgg11"]  # more than 4 keys ...
    config["protocol"].update(epochs=7, lr=0.5, momentum=0.8, batch=64)
    assert distill.staleness(as_made())[1] and distill.config_drift(as_made()).endswith(" ...")
    config["protocol"] = OmegaConf.to_container(compose(["pixel=dm", "ipc=1", "iterations=3"]), resolve=True)["protocol"]
    config["protocol"]["epochs"] = 7  # judged under another protocol: judged again
    assert distill.staleness(as_made()) == ("its command composes another config today (protocol.epochs=7->1000)", True)
    config["synset"]["optim"]["images"]["lr"] = 1.0  # and distilled with another lr: distilled again
    assert distill.staleness(as_made())[1] is False
    config["protocol"]["epochs"] = 1000
    config["chunk"] = 3  # how the backward was cut changes nothing computed
    config["synset"]["optim"]["images"]["lr"] = 5.0
    assert distill.stale(as_made()) is None


def test_a_result_is_stale_when_its_preset_changed_since(distill):
    from omegaconf import OmegaConf

    from genprior.config import compose

    command = "python bench/distill.py --name x pixel=dm ipc=1 iterations=3"
    config = OmegaConf.to_container(compose(["pixel=dm", "ipc=1", "iterations=3"]), resolve=True)
    config["run_dir"], config["added_since"] = "runs/bench/x", 1  # where it ran; a key today's config lacks
    assert distill.stale(record(command=command, config=OmegaConf.to_yaml(config))) is None
    config["synset"]["optim"]["images"]["lr"] = 1.0  # the preset's lr when it ran
    why = distill.stale(record(command=command, config=OmegaConf.to_yaml(config)))
    assert why == "its command composes another config today (synset.optim.images.lr=1.0->5.0)"
    # an option added since whose default changed the computation: older results behaved as its old value
    command = "python bench/distill.py --name x haba=dm ipc=1 iterations=3"
    config = OmegaConf.to_container(compose(["haba=dm", "ipc=1", "iterations=3"]), resolve=True)
    assert distill.stale(record(command=command, config=OmegaConf.to_yaml(config))) is None
    del config["synset"]["bound"]  # made before HaBa's bound existed: unbounded
    why = distill.stale(record(command=command, config=OmegaConf.to_yaml(config)))
    assert why == "its command composes another config today (synset.bound=False->True)"


def test_a_run_directory_is_kept_only_where_run_py_would_resume_it(distill, tmp_path):
    """Kept for judging again only if today's command composes the config the directory holds
    (else run.py would refuse it on every rerun, and the cell could never run again)."""
    from omegaconf import OmegaConf

    from genprior.config import compose

    run_dir, overrides = tmp_path / "r", ["pixel=dm", "ipc=1", "iterations=3"]
    run_dir.mkdir()
    config = OmegaConf.to_container(compose([*overrides, f"run_dir={run_dir}"]), resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
    assert distill.resumes(run_dir, overrides)
    assert distill.resumes(run_dir, [*overrides, "protocol.epochs=7"])  # judged otherwise: resumed
    assert not distill.resumes(run_dir, [*overrides, "synset.optim.images.lr=1.0"])  # distilled otherwise
    assert not distill.resumes(tmp_path / "none", overrides)
