"""End-to-end runs of genprior/run.py on real FashionMNIST with tiny budgets."""
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from genprior import run, runlog
from genprior.setfile import load_set
from tests.conftest import needs_fashion_mnist
from tests.runs import RUN_PY, kill_after_first_checkpoint, run_two_processes

pytestmark = needs_fashion_mnist
# judged by an MLP: the judging plumbing is the same for every network, and a ConvNet's pass over
# the 10k test images alone took 20 s of each run on CI (the ConvNet's training: tests/test_evaluate.py)
TINY = ["ipc=1", "iterations=2", "log_every=1", "objective.net_kwargs={width:16,depth:3}", "protocol=fast",
        "protocol.runs=1", "protocol.epochs=2", "protocol.models=[mlp]", "eval.baselines=false"]
TINY_MTT = ["objective.experts.num_experts=1", "objective.experts.epochs=2",
            "objective.experts.images_per_epoch=512", "objective.syn_steps=2", "objective.expert_epochs=1",
            "objective.max_start_epoch=1"]
TINY_REAL = ["objective.batch_real=16"]


def preset_args(preset, tmp_path):
    extra = TINY_MTT + [f"objective.experts.dir={tmp_path / 'experts'}"] if preset == "mtt" else TINY_REAL
    return [f"pixel={preset}", *TINY, *extra]


@pytest.mark.parametrize("preset", ["dc", "dm", "mtt"])
def test_each_preset_writes_every_output_and_they_load(preset, tmp_path):
    out = tmp_path / "run"
    assert run.main(preset_args(preset, tmp_path) + [f"run_dir={out}"]) == 0
    s = load_set(out / "synset.safetensors")
    assert s.images.shape == (10, 1, 28, 28) and s.labels.tolist() == list(range(10))
    assert torch.isfinite(s.images).all() and s.space == "normalized"
    assert (s.lr is not None) == (preset == "mtt")
    assert Image.open(out / "grid.png").size[0] > 28
    assert len(list((out / "images").rglob("*.png"))) == 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["synthetic"]["mlp"]["runs"] and metrics["storage"]["floats"] == 7840 + (preset == "mtt")
    assert len(list((out / "judged").glob("mlp-*.json"))) == 1  # the set's row; judged again never
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
    assert "pixel" in (out / "config.yaml").read_text()
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == [1, 2] and all(c["loss"] > 0 for c in curve)
    if preset == "mtt":
        assert (tmp_path / "experts" / "expert_000.safetensors").is_file()


def test_the_loop_holds_a_group_at_its_floor(tmp_path):
    """The learned lr starts at the experts' 0.01 and moves by ~1e-5 a step: a floor of 0.02 holds it
    there from the first update on (haba=mtt holds it at 1e-3, as HaBa's code)."""
    out = tmp_path / "run"
    args = preset_args("mtt", tmp_path) + ["eval.enabled=false", "synset.optim.lr.floor=0.02", f"run_dir={out}"]
    assert run.main(args) == 0
    assert load_set(out / "synset.safetensors").lr == pytest.approx(0.02)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert [g["floor"] for g in state["optimizer"]["param_groups"]] == [None, 0.02]  # resumed as it ran


def test_a_set_driven_out_of_the_pixel_range_is_named_in_the_log(tmp_path):
    """genprior/export.py's warning reaches log.txt: a DM step at lr 1e6 throws the set far out of the
    range (its PNGs clip it); the same run at the preset's lr stays quiet."""
    for lr, warned in ((1e6, True), (5.0, False)):
        out = tmp_path / f"lr{lr}"
        args = preset_args("dm", tmp_path) + ["eval.enabled=false", f"synset.optim.images.lr={lr}", f"run_dir={out}"]
        assert run.main(args) == 0
        assert ("warning: " in (out / "log.txt").read_text()) == warned, lr


def test_a_set_distilled_from_noise_trains_a_network_far_above_that_noise(tmp_path):
    """The toolkit's one promise, end to end: DM moves a noise start towards the data (its loss
    falls) until the set teaches a ConvNet what the noise cannot (measured: 61 % vs 6 %)."""
    args = ["pixel=dm", "synset.init=noise", "ipc=1", "objective.batch_real=64", "log_every=1",
            "eval.enabled=false"]
    assert run.main([*args, "iterations=0", f"run_dir={tmp_path / 'start'}"]) == 0  # the start, as a set
    assert run.main([*args, "iterations=12", f"run_dir={tmp_path / 'run'}"]) == 0
    curve = [json.loads(line)["loss"] for line in (tmp_path / "run" / "curve.jsonl").read_text().splitlines()]
    assert sum(curve[-3:]) < 0.7 * sum(curve[:3]), curve
    from genprior import evaluate as ev
    from genprior.data import load_split

    protocol = ev.load_protocol("fast", ["epochs=15", "runs=1", "dsa=none"])
    test = load_split("fashion_mnist", "test")
    test = (test.images[:1000], test.labels[:1000])
    start, distilled = (load_set(tmp_path / d / "synset.safetensors") for d in ("start", "run"))
    assert start.images.std() == pytest.approx(1, abs=0.05)  # the start is the unit noise init=noise draws
    noise, learned = (ev.train_and_test("convnet", s.images, s.labels, test, "fashion_mnist", protocol, seed=0)
                      for s in (start, distilled))
    assert noise < 0.2 and learned > noise + 0.35, (noise, learned)


def test_two_processes_equal_one(tmp_path):
    args = ["pixel=dm", "ipc=2", "iterations=3", "objective.batch_real=32", "eval.enabled=false",
            "objective.net_kwargs={width:16,depth:3}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = tmp_path / "one"
    subprocess.run([sys.executable, RUN_PY, *args, f"run_dir={one}"], check=True, env=env, timeout=600,
                   capture_output=True)
    two = tmp_path / "two"
    r = run_two_processes(args, two)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(2 processes" in (two / "log.txt").read_text()
    a, b = load_set(one / "synset.safetensors").images, load_set(two / "synset.safetensors").images
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    from genprior.data import load_split

    start = load_split("fashion_mnist", "train").random_subset(2, __import__("genprior.rng").rng.seeded(0, 0x1717))[0]
    assert (a - start).abs().max() > 1e-3  # and the steps moved the set they agree on


def test_sigkill_after_a_checkpoint_resumes_to_the_same_result(tmp_path):
    # DC with a 3-step outer loop: checkpoints every 2 steps land mid-round, so the
    # objective's network (trained between steps) must come back from the checkpoint too
    args = ["pixel=dc", "ipc=2", "iterations=8", "checkpoint_every=2", "log_every=1", "objective.outer_loop=3",
            "objective.inner_loop=1", "objective.batch_real=16", "eval.enabled=false",
            "objective.net_kwargs={width:16,depth:3}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = tmp_path / "killed"
    at = kill_after_first_checkpoint(args, killed, 8)
    with open(killed / "curve.jsonl", "a") as f:  # as if the killed process had logged a step past its checkpoint
        f.write(json.dumps({"step": at + 1, "loss": -1.0}) + "\n")
    subprocess.run([sys.executable, RUN_PY, *args, f"run_dir={killed}"], check=True, env=env, timeout=600)
    assert f"resuming at step {at}/8" in (killed / "log.txt").read_text()
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, RUN_PY, *args, f"run_dir={straight}"], check=True, env=env, timeout=600)
    a, b = load_set(killed / "synset.safetensors").images, load_set(straight / "synset.safetensors").images
    assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    # one curve entry per step: those the killed process logged after its checkpoint are dropped on resume
    curves = [[json.loads(line) for line in (d / "curve.jsonl").read_text().splitlines()] for d in (killed, straight)]
    assert [c["step"] for c in curves[0]] == [c["step"] for c in curves[1]] == list(range(1, 9))
    assert [c["loss"] for c in curves[0]] == pytest.approx([c["loss"] for c in curves[1]], rel=1e-5)


def test_ctrl_c_inside_a_steps_updates_still_checkpoints_that_step_whole(tmp_path, monkeypatch):
    """A signal between the set's update and the synset's own (end_step: HaBa's adversary takes a
    training step there) waits for both: the checkpoint says step k + 1, never k for a set one
    update ahead, and the resumed run ends where an uninterrupted one does."""
    import signal

    from genprior.synsets.pixel import PixelSynset

    # as in a terminal: a `&` job of a script (CI) starts with SIGINT ignored, which a run leaves ignored
    monkeypatch.setattr(signal, "getsignal", lambda s: signal.default_int_handler if s == signal.SIGINT else
                        signal.SIG_DFL)

    args = ["pixel=dm", "ipc=1", "iterations=4", "checkpoint_every=100", "objective.batch_real=16",
            "eval.enabled=false", "threads=1"]
    stop_at = [1]

    def end_step(self, step):
        if step in stop_at:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(10 ** 5))  # bytecode after the signal: an unheld handler raises in here

    monkeypatch.setattr(PixelSynset, "end_step", end_step)
    assert run.main([*args, f"run_dir={tmp_path / 'stopped'}"]) == 130
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["step"] == 2
    stop_at.clear()
    assert run.main([*args, f"run_dir={tmp_path / 'stopped'}"]) == 0
    assert run.main([*args, f"run_dir={tmp_path / 'straight'}"]) == 0
    a, b = (load_set(tmp_path / d / "synset.safetensors").images for d in ("stopped", "straight"))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pixel=dm", "ipc=1", "iterations=30", "checkpoint_every=1", "objective.batch_real=16",
            "synset.optim.images.lr=1e25", "eval.enabled=false", f"run_dir={out}"]
    assert run.main(args) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # above it only the progress bar
    assert last.startswith("genprior.run: diverged:") and "not finite" in last and "last good checkpoint" in last
    assert "Traceback" not in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] < 30 and torch.isfinite(state["synset"]["images"]).all()
    assert not (out / "synset.safetensors").exists()


@pytest.mark.parametrize("args,match", [
    (["pixel=dmm"], "unknown pixel choice 'dmm'; valid: dc, dm, mtt"),
    (["objective=gm"], "unknown objective choice 'gm'; valid: dc, dm, mtt"),
    (["dataset=imagenet"], "unknown dataset choice 'imagenet'; valid: cifar10"),
    (["pixel=dm", "ipc=7000"], "ipc 7000 is larger than the smallest class"),
    (["pixel=dm", "ipc=0"], "ipc must be an integer >= 1"),
    (["pixel=dm", "protocol.models=[resnet99]"], "protocol.models has unknown 'resnet99'; valid: alexnet"),
])
def test_bad_input_is_one_line_exit_2(args, match, tmp_path, capsys):
    assert run.main(args + [f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err
    assert not (tmp_path / "r" / "config.yaml").exists()


def test_checkpoint_of_another_config_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["pixel=dm", "ipc=1", "iterations=1", "objective.batch_real=16", "eval.enabled=false", f"run_dir={out}"]
    assert run.main(base) == 0
    before = (out / "checkpoint.pt").read_bytes(), (out / "config.yaml").read_text()
    assert run.main(base + ["synset.optim.images.lr=3.0"]) == 2
    assert "another config (synset.optim.images.lr=5.0->3.0)" in capsys.readouterr().err
    assert ((out / "checkpoint.pt").read_bytes(), (out / "config.yaml").read_text()) == before
    # more iterations of the same config is not another config: it resumes; the metrics of the
    # 1-step set (here a stand-in) judged a set that is replaced, so they go with it
    (out / "metrics.json").write_text('{"synthetic": {}}')
    assert run.main(base[:2] + ["iterations=2"] + base[3:]) == 0
    assert "resuming at step 1/2" in (out / "log.txt").read_text()
    assert not (out / "metrics.json").exists()
    # fewer iterations than the checkpoint holds would export a 2-step set labelled as 1 step
    capsys.readouterr()
    before = (out / "checkpoint.pt").read_bytes(), (out / "synset.safetensors").read_bytes()
    assert run.main(base) == 2
    err = capsys.readouterr().err
    assert "holds step 2, past iterations=1" in err and err.count("\n") == 1, err
    assert ((out / "checkpoint.pt").read_bytes(), (out / "synset.safetensors").read_bytes()) == before


def test_help_lists_groups(capsys):
    assert run.main(["--help"]) == 0
    assert "pixel=dc|dm|mtt" in capsys.readouterr().out


def test_held_signals_keep_an_ignored_signal_ignored_and_drop_one_caught_while_stopping():
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a `&` job of a script
    try:
        with run.held_signals():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    with pytest.raises(run.Terminated):  # held, then delivered when the block ends
        with run.held_signals():
            os.kill(os.getpid(), signal.SIGTERM)
    with run.held_signals(stopping=True):  # the run is already stopping: nothing left to stop
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_curve_point_a_stop_interrupted_is_taken_on_resumption(tmp_path):
    from tests.test_data import fake_mnist

    from omegaconf import OmegaConf

    from genprior.evaluate import load_protocol

    fake_mnist(tmp_path, n_train=60, n_test=20)
    OmegaConf.save(load_protocol("fast", ["runs=1", "epochs=3"]), tmp_path / "tiny.yaml")  # a protocol by path
    out = tmp_path / "r"
    args = ["pixel=dm", "dataset=mnist", f"dataset.root={tmp_path}", "ipc=1", "iterations=2", "log_every=1",
            "eval.every=2", f"eval.curve_protocol={tmp_path / 'tiny.yaml'}", "eval.enabled=false", f"run_dir={out}"]
    assert run.main(args) == 0
    curve = (out / "curve.jsonl").read_text().splitlines()
    point = [line for line in curve if "convnet" in line]
    assert len(point) == 1 and json.loads(point[0])["step"] == 2
    # as if stopped inside step 2's curve point: the checkpoint holds step 2, the curve lacks its point
    (out / "curve.jsonl").write_text("".join(line + "\n" for line in curve if line not in point))
    assert run.main(args) == 0
    again = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines() if "convnet" in line]
    assert [p["step"] for p in again] == [2] and again[0]["convnet"] == json.loads(point[0])["convnet"]
    assert run.main(args) == 0  # a point that is there is not taken twice
    assert (out / "curve.jsonl").read_text().count("convnet") == 1


def test_the_final_scalars_carry_the_image_metrics_as_image_metrics_writes_them():
    metrics = {"synthetic": {"convnet": {"mean": 70.0}},
               "images": {"reference": {"dataset": "fashion_mnist"}, "n": 10, "wall_s": 3.0,
                          "inception": {"overall": {"fid": 190.4, "kid": 0.01, "n": 10, "n_ref": 10000},
                                        "diversity": {"mean": 12.5}},
                          "lpips": {"unavailable": "no weights"}}}
    assert runlog.final_scalars(metrics) == {"accuracy/convnet": 70.0, "images/inception/fid": 190.4,
                                           "images/inception/kid": 0.01, "images/inception/n": 10,
                                           "images/inception/n_ref": 10000, "images/inception/diversity": 12.5}
