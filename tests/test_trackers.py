"""log_with=tensorboard: Accelerate's tracker gets the loss, curve, storage, grid and final figures."""
import subprocess
import sys

import pytest

from genprior import run
from tests.test_data import fake_mnist


def test_tensorboard_run_can_be_read_back(tmp_path):
    pytest.importorskip("tensorboard")  # the `tensorboard` extra (in `dev`)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from omegaconf import OmegaConf

    from genprior.evaluate import load_protocol

    fake_mnist(tmp_path, n_train=60, n_test=20)
    out = tmp_path / "r"
    # the curve protocol: fast's ConvNet, 1 run of 1 epoch (its own overrides do not reach a named one)
    OmegaConf.save(load_protocol("fast", ["runs=1", "epochs=1"]), tmp_path / "tiny.yaml")
    assert run.main(["pixel=dm", "dataset=mnist", f"dataset.root={tmp_path}", "ipc=1", "iterations=2", "log_every=1",
                     "eval.every=2", f"eval.curve_protocol={tmp_path / 'tiny.yaml'}", "protocol=fast", "protocol.runs=1",
                     "protocol.epochs=1", "protocol.models=[mlp]", "eval.baselines=false", "log_with=[tensorboard]",
                     f"run_dir={out}"]) == 0
    events = EventAccumulator(str(out / "trackers" / "genprior"))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("loss")]
    curve = [line for line in (out / "curve.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [s for s, _ in losses] == [1, 2] and len(curve) == 2
    assert losses[1][1] == pytest.approx(float(curve[1].split('"loss": ')[1].rstrip("}")), rel=1e-6)
    assert events.Scalars("storage/floats")[0].value == 784 * 10
    assert [e.step for e in events.Scalars("accuracy/mlp")] == [2]
    assert events.Tags()["images"] == ["grid"] and len(events.Images("grid")) == 2  # curve point, final set
    assert events.Scalars("curve/convnet")[0].step == 2  # the curve protocol (fast) judges a convnet
    assert list((out / "trackers" / "genprior").glob("*/hparams.yml"))  # the resolved config


def test_unknown_or_missing_tracker_is_one_line(tmp_path, capsys):
    assert run.main(["pixel=dm", "log_with=tensorbored", f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown log_with tracker 'tensorbored'; valid: " in err[0] and "tensorboard" in err[0]
    assert not (tmp_path / "r").exists()


def test_without_log_with_no_tracker_package_is_imported(tmp_path):
    fake_mnist(tmp_path, n_train=60, n_test=20)
    code = ("import sys; from genprior import run; "
            f"rc = run.main(['pixel=dm', 'dataset=mnist', 'dataset.root={tmp_path}', 'ipc=1', 'iterations=1', "
            f"'eval.enabled=false', 'run_dir={tmp_path / 'r'}']); "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'wandb', 'mlflow', 'aim', "
            "'comet_ml', 'clearml', 'dvclive', 'swanlab', 'trackio', 'tensorboardX') "
            "or m.startswith('torch.utils.tensorboard') or m == 'genprior.trackers']; "
            "print(rc, loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"
