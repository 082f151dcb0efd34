"""The report renders from real (tiny) run directories, side by side."""
import json

import numpy as np
import pytest
from PIL import Image

from genprior import report, run
from tests.conftest import needs_fashion_mnist
from tests.metrics.conftest import needs_inception
from tests.test_run import TINY, TINY_REAL


@needs_inception
@needs_fashion_mnist
def test_report_of_two_tiny_runs(tmp_path):
    dirs = []
    for seed in (0, 1):
        out = tmp_path / f"dm-seed{seed}"
        extra = ["eval.images.enabled=true", "eval.images.limit=20", "eval.images.lpips=false"] if seed == 0 else []
        assert run.main(["pixel=dm", *TINY, *TINY_REAL, f"seed={seed}", f"run_dir={out}", *extra]) == 0
        dirs.append(out)
    images = json.loads((dirs[0] / "metrics.json").read_text())["images"]
    assert images["inception"]["overall"]["kid"] is not None and images["n"] == 10

    assert report.main([str(d) for d in dirs] + ["--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    for d in dirs:
        assert f"| {d.name} | fashion_mnist | pixel | dm | 1 |" in md  # the runs table
        assert f"**{d.name}** | " in md  # its accuracy row
        assert Image.open(tmp_path / "report" / "grids" / f"{d.name}.png").size[0] > 28
    assert "## Image metrics" in md and "| dm-seed0 | 10 |" in md
    assert "Not measured yet: dm-seed1" in md  # and how to measure it
    loss = Image.open(tmp_path / "report" / "loss.png")
    assert loss.size[0] == 720 and len(_colors(loss)) > 3  # lines were drawn


def test_report_bad_input(tmp_path, capsys):
    assert report.main([str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_runs_named_alike_are_all_prefixed_with_their_data_set(tmp_path):
    dirs = []
    for dataset in ("fashion_mnist", "cifar10"):
        d = tmp_path / dataset / "seed0"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(f"dataset: {{name: {dataset}}}\nseed: 0\n")
        dirs.append(d)
    table = report.summary_table(dirs)
    assert "| fashion_mnist-seed0 | fashion_mnist |" in table
    assert "| cifar10-seed0 | cifar10 |" in table  # the last of them too, not a bare "seed0"


def test_line_plot_draws_every_series(tmp_path):
    path = report.line_plot({"a": [(0, 1.0), (10, 0.5)], "b": [(0, 2.0), (10, 3.0)]}, "t", tmp_path / "p.png",
                            log_y=True)
    colors = _colors(Image.open(path))
    assert (31, 119, 180) in colors and (214, 39, 40) in colors  # the first two palette colors
    with pytest.raises(Exception, match="nothing to plot"):
        report.line_plot({"a": []}, "t", tmp_path / "q.png")


def _colors(img):
    return {tuple(p) for p in np.asarray(img.convert("RGB")).reshape(-1, 3).tolist()}


def test_a_diverged_run_with_a_torn_curve_still_reports(tmp_path):
    # no run: a run directory as a killed, diverged run leaves it
    d = tmp_path / "diverged"
    d.mkdir()
    (d / "config.yaml").write_text("dataset: {name: fashion_mnist}\nsynset: {kind: pixel}\nobjective: {kind: dm}\n"
                                   "ipc: 1\niterations: 3\nseed: 0\n")
    (d / "curve.jsonl").write_text('{"step": 1, "loss": NaN}\n{"step": 2, "loss": NaN}\n{"step": 3, "lo')
    assert report.main([str(d), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| diverged | fashion_mnist | pixel | dm | 1 |" in md and "No finite curve values" in md


def test_baselines_judged_under_two_protocols_are_both_shown(tmp_path):
    dirs = []
    for protocol, epochs, acc in (("fast", 100, 60.0), ("dc_convnet", 1000, 70.0)):
        d = tmp_path / protocol
        d.mkdir()
        (d / "config.yaml").write_text("dataset: {name: fashion_mnist}\nsynset: {kind: pixel}\n"
                                       "objective: {kind: dm}\nipc: 1\niterations: 3\nseed: 0\n")
        row = {"convnet": {"mean": acc, "std": 1.0, "runs": [acc]}}
        (d / "metrics.json").write_text(json.dumps({"synthetic": row, "random_real": row, "protocol": protocol,
                                                    "protocol_config": {"epochs": epochs, "runs": 1}}))
        dirs.append(d)
    assert report.main([str(d) for d in dirs] + ["--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "random real (fashion_mnist, IPC 1, fast: 100 epochs x 1 runs) | 60.00" in md
    assert "random real (fashion_mnist, IPC 1, dc_convnet: 1000 epochs x 1 runs) | 70.00" in md
