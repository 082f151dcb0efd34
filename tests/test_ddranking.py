"""DD-Ranking's scores on fractions, by hand; a run with baselines writes them; the export loads."""
import json

import pytest
import torch

from genprior import ddranking, run
from tests.test_data import fake_mnist

# (exp(x) - 1/e) / (e - 1/e) at x = -0.1, 0, 0.1, 0.2, worked out separately
SQUASHED = {-0.1: 0.2284536383, 0.0: 0.2689414214, 0.1: 0.3136873417, 0.2: 0.3631392317}


def test_label_robust_score_by_hand():
    # run 1: HLR (90-60)/100 = .3, IOR (60-50)/100 = .1, .5*.1 - .5*.3 = -.1; run 2: HLR .2, IOR .2 -> 0
    runs = ddranking.label_robust([60.0, 70.0], [50.0, 50.0], 90.0)
    assert [r["hlr"] for r in runs] == pytest.approx([0.3, 0.2])
    assert [r["ior"] for r in runs] == pytest.approx([0.1, 0.2])
    assert [r["lrs"] for r in runs] == pytest.approx([SQUASHED[-0.1], SQUASHED[0.0]])


def test_augmentation_robust_score_by_hand():
    # run 1: .5 * (60-50)/100 + .5 * (55-45)/100 = .1; run 2: .5 * .2 + .5 * .2 = .2
    ars = ddranking.augmentation_robust([60.0, 70.0], [50.0, 50.0], [55.0, 65.0], [45.0, 45.0])
    assert ars == pytest.approx([SQUASHED[0.1], SQUASHED[0.2]])


def test_scores_stay_in_the_unit_interval_on_fractions():
    # the worst and best cases a percentage-fed exp would blow up: here 0 and 1 at the ends
    worst = ddranking.label_robust([0.0], [100.0], 100.0)[0]["lrs"]
    best = ddranking.label_robust([100.0], [0.0], 100.0)[0]["lrs"]
    assert worst == pytest.approx(0.0) and 0 < best < 1


def test_scores_from_metrics_pair_runs_and_skip_what_is_missing():
    m = {"synthetic": {"convnet": {"runs": [60.0, 70.0]}, "mlp": {"runs": [30.0]}},
         "random_real": {"convnet": {"runs": [50.0, 50.0]}, "mlp": {"runs": [20.0]}},
         "full_data": {"convnet": {"mean": 90.0}},
         "no_augmentation": {"synthetic": {"convnet": {"runs": [55.0, 65.0]}},
                             "random_real": {"convnet": {"runs": [45.0, 45.0]}}}}
    s = ddranking.scores(m)
    assert set(s) == {"convnet"}  # mlp has neither full data nor a run without augmentation
    mean_lrs = (SQUASHED[-0.1] + SQUASHED[0.0]) / 2
    assert s["convnet"]["lrs"]["mean"] == pytest.approx(mean_lrs, abs=1e-4)
    assert s["convnet"]["lrs"]["std"] == pytest.approx((SQUASHED[0.0] - SQUASHED[-0.1]) / 2, abs=1e-4)
    assert s["convnet"]["ars"]["mean"] == pytest.approx((SQUASHED[0.1] + SQUASHED[0.2]) / 2, abs=1e-4)
    assert s["convnet"]["hlr"]["mean"] == pytest.approx(0.25) and s["convnet"]["ior"]["mean"] == pytest.approx(0.15)


def test_export_is_class_major_and_loads(tmp_path):
    images = torch.arange(6.0).view(6, 1, 1, 1)
    labels = torch.tensor([1, 0, 1, 0, 2, 2])
    out = ddranking.export(images, labels, 0.01, tmp_path / "dd")
    x = torch.load(out / "images.pt", weights_only=True)
    y = torch.load(out / "labels.pt", weights_only=True)
    assert y.tolist() == [0, 0, 1, 1, 2, 2] and y.dtype == torch.int64
    assert x.flatten().tolist() == [1.0, 3.0, 0.0, 2.0, 4.0, 5.0]  # each image keeps its label, order within a class kept
    assert torch.load(out / "lr.pt", weights_only=True).item() == pytest.approx(0.01)


def test_a_run_with_baselines_writes_lrs_and_ars_computed_from_its_own_runs(tmp_path):
    fake_mnist(tmp_path, n_train=60, n_test=20)
    out = tmp_path / "r"
    assert run.main(["pixel=dm", "dataset=mnist", f"dataset.root={tmp_path}", "ipc=1", "iterations=1",
                     "protocol=fast", "protocol.runs=2", "protocol.epochs=2", "protocol.models=[mlp]",
                     "protocol.full_data.epochs=1", f"run_dir={out}"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    scores = m["dd_ranking"]["mlp"]
    assert {"hlr", "ior", "lrs", "ars"} <= set(scores)
    syn, rnd = m["synthetic"]["mlp"]["runs"], m["random_real"]["mlp"]["runs"]
    plain = m["no_augmentation"]
    lrs = [r["lrs"] for r in ddranking.label_robust(syn, rnd, m["full_data"]["mlp"]["mean"])]
    ars = ddranking.augmentation_robust(syn, rnd, plain["synthetic"]["mlp"]["runs"], plain["random_real"]["mlp"]["runs"])
    assert scores["lrs"]["mean"] == pytest.approx(sum(lrs) / 2, abs=1e-4)
    assert scores["ars"]["mean"] == pytest.approx(sum(ars) / 2, abs=1e-4)
    assert torch.load(out / "dd_ranking" / "images.pt", weights_only=True).shape == (10, 1, 28, 28)
