"""haba presets end to end on real FashionMNIST: two processes equal one, a killed run resumes, bad budgets."""
import json
import subprocess
import sys

import torch

from genprior import run
from genprior.setfile import load_set
from tests.conftest import needs_fashion_mnist
from tests.runs import RUN_PY, child_env, kill_after_first_checkpoint, run_two_processes

pytestmark = needs_fashion_mnist
TINY = ["haba=dm", "ipc=2", "objective.batch_real=16", "objective.net_kwargs={width:16,depth:3}",
        "synset.hallucinators=3", "eval.enabled=false"]


def test_the_exported_set_is_the_product_and_the_protocol_judges_it(tmp_path):
    out = tmp_path / "run"
    assert run.main([*TINY[:-1], "iterations=2", "protocol=fast", "protocol.runs=1", "protocol.epochs=2",
                     "protocol.models=[mlp]", "eval.baselines=[random_real]", f"run_dir={out}"]) == 0
    s = load_set(out / "synset.safetensors")
    assert s.meta["views"] == 3 and len(s.labels) == 10 * s.meta["bases_per_class"] * 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ipc"] == 2 and metrics["views"] == 3  # the random real baseline is the budget's IPC
    assert metrics["storage"]["floats"] <= metrics["storage"]["budget"]


def test_two_processes_equal_one(tmp_path):
    args = [*TINY, "iterations=3"]
    one = tmp_path / "one"
    subprocess.run([sys.executable, RUN_PY, *args, f"run_dir={one}"], check=True, env=child_env(), capture_output=True)
    two = tmp_path / "two"
    r = run_two_processes(args, two)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (one, two))
    for k in a["synset"]:
        torch.testing.assert_close(b["synset"][k], a["synset"][k], rtol=1e-3, atol=1e-4)  # summation order
    for k in a["synset_aux"]["adversary"]:
        torch.testing.assert_close(b["synset_aux"]["adversary"][k], a["synset_aux"]["adversary"][k], rtol=1e-3,
                                   atol=1e-4)


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_set(tmp_path):
    args = [*TINY, "iterations=6", "checkpoint_every=2", "log_every=1"]
    killed = tmp_path / "killed"
    kill_after_first_checkpoint(args, killed, 6)
    subprocess.run([sys.executable, RUN_PY, *args, f"run_dir={killed}"], check=True, env=child_env(), capture_output=True)
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, RUN_PY, *args, f"run_dir={straight}"], check=True, env=child_env(), capture_output=True)
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (killed, straight))
    assert all(torch.allclose(a["synset"][k], b["synset"][k], atol=1e-6) for k in a["synset"])
    assert all(torch.allclose(a["synset_aux"]["adversary"][k], b["synset_aux"]["adversary"][k], atol=1e-6)
               for k in a["synset_aux"]["adversary"])


def test_a_budget_too_small_is_one_line(tmp_path, capsys):
    assert run.main(["haba=dm", "ipc=1", "synset.base_resolution=28", f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not even one basis per class fits" in err and not (tmp_path / "r").exists()
