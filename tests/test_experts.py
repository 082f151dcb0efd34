import json
import re

import pytest
import torch

from genprior.data import load_split
from genprior.errors import ConfigError
from genprior.experts import ExpertSpec, ensure_experts, expert_path, flat_params, load_experts, main, expert_spec
from genprior.nets import build_net
from tests.test_data import fake_mnist


@pytest.fixture
def mnist(tmp_path):
    fake_mnist(tmp_path, n_train=200, n_test=20)
    return load_split("mnist", "train", root=str(tmp_path))


def tiny_spec(**kw):
    return ExpertSpec(**{"dataset": "mnist", "net": "convnet", "net_kwargs": {"width": 8, "depth": 2}, "epochs": 3,
                         "batch": 64, "images_per_epoch": 128, "num_experts": 2, **kw})


def test_snapshots_are_copies_and_epochs_differ(mnist, tmp_path):
    net = build_net("mlp", 1, 10, 28)
    snap = flat_params(net)
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    assert not torch.equal(snap, flat_params(net))  # the snapshot did not follow the live weights

    spec = tiny_spec()
    ensure_experts(spec, mnist, tmp_path / "buf")
    trajectories = load_experts(tmp_path / "buf", spec)
    assert len(trajectories) == 2 and trajectories[0].shape[0] == 4
    for t in trajectories:
        assert all(not torch.equal(t[e], t[e + 1]) for e in range(3))
    assert not torch.equal(trajectories[0][0], trajectories[1][0])  # experts start from different inits
    manifest = json.loads((tmp_path / "buf" / "manifest.json").read_text())
    assert manifest["net"] == "convnet" and manifest["epochs"] == 3 and manifest["dataset"] == "mnist"


def test_manifest_mismatch_and_degenerate_buffers_are_refused(mnist, tmp_path):
    spec = tiny_spec()
    ensure_experts(spec, mnist, tmp_path / "buf")
    other = tiny_spec(lr=0.05)
    with pytest.raises(ConfigError, match="lr: built with 0.01, run needs 0.05"):
        load_experts(tmp_path / "buf", other)
    with pytest.raises(ConfigError, match="lr: built with 0.01"):
        ensure_experts(other, mnist, tmp_path / "buf")
    # aliased snapshots (the original MTT CPU bug) make every epoch identical
    from safetensors.torch import save_file

    t = load_experts(tmp_path / "buf", spec)[0]
    save_file({"trajectory": t[-1:].repeat(4, 1)}, str(expert_path(tmp_path / "buf", 0)))
    with pytest.raises(ConfigError, match="degenerate"):
        load_experts(tmp_path / "buf", spec)
    with pytest.raises(ConfigError, match="no expert buffer"):
        load_experts(tmp_path / "empty", spec)


def test_fp16_storage_and_cli(tmp_path, capsys):
    fake_mnist(tmp_path, n_train=100, n_test=10)
    rc = main(["dataset=mnist", "net=mlp", "epochs=2", "batch=50", "num_experts=1", "storage=fp16",
               f"dir={tmp_path / 'b'}", f"data_root={tmp_path}"])
    assert rc == 0
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / "b" / "expert_000.safetensors"))["trajectory"].dtype == torch.float16
    # the command line starts from a run's experts (configs/objective/mtt.yaml), not from other defaults
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert (manifest["images_per_epoch"], manifest["lr"], manifest["seed"]) == (10000, 0.01, 0)
    assert main(["dataset=mnist", "epochz=2", f"data_root={tmp_path}"]) == 2
    assert "unknown key epochz; valid: batch, data_root" in capsys.readouterr().err
    assert expert_spec({"epochs": "4", "net_kwargs": {"width": 8}}).epochs == 4


def test_a_diverging_expert_is_one_line_exit_1_naming_the_lr(tmp_path, capsys):
    fake_mnist(tmp_path, n_train=100, n_test=10)
    rc = main(["dataset=mnist", "net=mlp", "epochs=2", "batch=50", "num_experts=1", "lr=1e12",
               f"dir={tmp_path / 'b'}", f"data_root={tmp_path}"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert re.match(r"genprior.experts: diverged: expert 0 diverged in epoch \d: lower the experts' lr, "
                    r"now 1000000000000.0 ", err.strip().splitlines()[-1])  # the line after the progress lines


def test_a_buffer_is_for_one_resolution():
    """Experts trained at 32 px are not those of 28 px (a global-pool network has the same
    parameter count at both: nothing else would tell them apart)."""
    assert tiny_spec().identity() == tiny_spec(resolution=28).identity()  # the data set's own: as before the key
    at32 = tiny_spec(resolution=32).identity()
    assert at32["resolution"] == 32 and at32["net_digest"] != tiny_spec().identity()["net_digest"]


def test_the_schema_defaults_are_the_run_defaults():
    # ExpertSpec() and the buffer a run asks for by default (configs/objective/mtt.yaml) are one buffer
    from genprior.experts import run_defaults

    assert ExpertSpec().identity() == ExpertSpec(**run_defaults()).identity()


def test_a_buffer_built_in_parts_or_by_ranks_equals_one_built_whole(mnist, tmp_path):
    # a killed build keeps its finished experts and a rerun builds only the rest; ranks split the
    # missing ones: every way gives the same trajectories (each expert is seeded by its index)
    whole, parts, ranks = tmp_path / "whole", tmp_path / "parts", tmp_path / "ranks"
    assert ensure_experts(tiny_spec(), mnist, whole) == 2
    assert ensure_experts(tiny_spec(num_experts=1), mnist, parts) == 1
    assert ensure_experts(tiny_spec(), mnist, parts) == 1 and ensure_experts(tiny_spec(), mnist, parts) == 0
    ensure_experts(tiny_spec(), mnist, ranks, rank=1, world=2)
    assert not expert_path(ranks, 0).is_file() and expert_path(ranks, 1).is_file()
    ensure_experts(tiny_spec(), mnist, ranks, rank=0, world=2)
    for d in (parts, ranks):
        assert all(torch.equal(a, b) for a, b in zip(load_experts(whole, tiny_spec()), load_experts(d, tiny_spec())))
