"""bench/trajectory_fit.py: every set meets the same draws, so the figure is the set's own: the
same run measured twice agrees, and noise in the run's place fits its experts worse."""
import shutil

import pytest
import torch

from genprior import run
from genprior.errors import ConfigError
from genprior.setfile import load_set, save_set
from tests.conftest import needs_fashion_mnist
from tests.test_run import preset_args

pytestmark = needs_fashion_mnist


def test_a_set_fits_the_same_twice_and_better_than_noise(bench, tmp_path):
    fit = bench("trajectory_fit").trajectory_fit
    distilled = tmp_path / "mtt"
    assert run.main([*preset_args("mtt", tmp_path), "eval.enabled=false", f"run_dir={distilled}"]) == 0
    first = fit(distilled, 4)
    assert first["losses"] == fit(distilled, 4)["losses"] and len(first["losses"]) == 4
    assert first["mean"] > 0
    noise = tmp_path / "noise"
    shutil.copytree(distilled, noise)
    s = load_set(distilled / "synset.safetensors")
    save_set(noise / "synset.safetensors", torch.randn_like(s.images) * 3, s.labels, s.dataset, s.space, lr=s.lr)
    assert fit(noise, 4)["mean"] > first["mean"]


def test_a_run_of_another_objective_is_one_line(bench, tmp_path):
    out = tmp_path / "dm"
    assert run.main([*preset_args("dm", tmp_path), "eval.enabled=false", f"run_dir={out}"]) == 0
    with pytest.raises(ConfigError, match="is a dm run; trajectory fit needs an MTT one"):
        bench("trajectory_fit").trajectory_fit(out, 2)
