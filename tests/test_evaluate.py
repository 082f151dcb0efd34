import json
import subprocess
import sys

import pytest
import torch

from genprior import evaluate as ev
from genprior.data import denormalize, load_split
from genprior.errors import ConfigError
from genprior.report import accuracy_text
from genprior.setfile import save_set
from tests.conftest import needs_fashion_mnist
from tests.test_data import fake_mnist


def test_protocols_compose_and_are_frozen():
    dc = ev.load_protocol("dc_convnet")
    assert (dc.models, dc.runs, dc.epochs, dc.batch, dc.lr, dc.momentum, dc.weight_decay) == \
        (["convnet"], 5, 1000, 256, 0.01, 0.9, 0.0005)
    assert dc.dsa == "color_crop_cutout_flip_scale_rotate" and dc.full_data.epochs == 20
    cross = ev.load_protocol("cross_arch")
    assert cross.models == ["convnet", "resnet18", "vgg11", "alexnet", "vit"] and cross.epochs == 1000
    fast = ev.load_protocol("fast", ["runs=1"])
    assert fast.runs == 1 and fast.epochs == 100 and fast.momentum == 0.9 and fast.full_data.epochs == 1
    assert fast.full_data.lr == 0.01  # nested keys the child does not name come from dc_convnet
    with pytest.raises(ConfigError, match="valid: cross_arch, dc_convnet, fast"):
        ev.load_protocol("dc_resnet")
    with pytest.raises(ConfigError, match="valid keys"):
        ev.load_protocol("fast", ["epoch=3"])


def test_a_protocol_copied_elsewhere_still_extends_the_shipped_ones(tmp_path, capsys):
    (tmp_path / "my.yaml").write_text("defaults: [dc_convnet, _self_]\nname: my\nepochs: 3\n")
    my = ev.load_protocol(str(tmp_path / "my.yaml"), ["runs=2"])  # was Hydra's MissingConfigException traceback
    assert (my.name, my.epochs, my.runs, my.models, my.full_data.epochs) == ("my", 3, 2, ["convnet"], 20)
    with pytest.raises(ConfigError, match="bad protocol override.*valid keys: name, models"):
        ev.load_protocol(str(tmp_path / "my.yaml"), ["epoch=3"])
    (tmp_path / "typo.yaml").write_text("defaults: [dc_convnett, _self_]\nname: typo\n")
    for overrides in ([], ["epochs=3"]):  # the file's own fault, whether or not an override came with it
        assert ev.main(["--random-real", f"protocol={tmp_path / 'typo.yaml'}", *overrides]) == 2
        err = capsys.readouterr().err
        assert "does not compose" in err and "'dc_convnett'" in err and "unknown protocol" not in err
        assert "override" not in err and "valid keys" not in err and err.count("\n") == 1, err


def test_stats_by_hand():
    s = ev.stats([0.5, 0.7])
    assert s == {"mean": 60.0, "std": 10.0, "runs": [50.0, 70.0]}  # population std, as np.std


def test_summary_gain_and_gap():
    m = {"synthetic": {"convnet": {"mean": 80.0}}, "random_real": {"convnet": {"mean": 70.0}},
         "full_data": {"convnet": {"mean": 90.0}}}
    assert ev.summarize(m)["convnet"] == {"synthetic": 80.0, "random_real": 70.0, "full_data": 90.0,
                                          "gain_over_random": 10.0, "gap_closed": 0.5}


def test_the_full_data_key_names_what_the_schedule_inherits_from_the_protocol():
    key = lambda *o: ev.full_data_key("fashion_mnist", "convnet", ev.load_protocol("fast", list(o)), "normalized", 28)
    base = key()
    assert base["schedule"]["epochs"] == 1 and base["schedule"]["compile"] is False  # full_data's, the protocol's
    assert key("compile=true") != base  # full_data names no `compile`: the protocol's trains it
    assert key("precision=bf16") == base  # full_data names its own precision (fp32)
    assert key("epochs=5") == base  # nor are the protocol's own epochs the full-data schedule's


def test_summary_without_full_data_has_no_gap():
    m = {"synthetic": {"convnet": {"mean": 80.0}}, "random_real": {"convnet": {"mean": 70.0}}}
    assert ev.summarize(m)["convnet"]["gain_over_random"] == 10.0
    assert ev.summarize(m)["convnet"]["gap_closed"] is None


def test_baselines_can_be_chosen(tmp_path, monkeypatch):
    assert ev.baseline_names(True) == ("random_real", "full_data", "no_augmentation") and ev.baseline_names(False) == ()
    assert ev.baseline_names("random_real") == ("random_real",)
    with pytest.raises(ConfigError, match="unknown baseline 'full'; valid: true, false, or a list of random_real"):
        ev.baseline_names(["random_real", "full"])
    fake_mnist(tmp_path, n_train=60, n_test=20)
    path = save_set(tmp_path / "s.safetensors", torch.rand(10, 1, 28, 28), torch.arange(10), "mnist", space="unit")

    def full_data(*a, **k):
        raise AssertionError("full_data was not asked for")

    monkeypatch.setattr(ev, "full_data", full_data)
    m = ev.evaluate_set(ev.load_set(path), ev.load_protocol("fast", ["runs=1", "epochs=1", "models=[mlp]"]),
                        root=str(tmp_path), baselines=["random_real"])
    assert set(m) >= {"synthetic", "random_real", "summary"} and "full_data" not in m
    assert m["summary"]["mlp"]["gap_closed"] is None


def test_metrics_name_the_networks_that_judged(tmp_path):
    fake_mnist(tmp_path, n_train=60, n_test=20)
    path = save_set(tmp_path / "s.safetensors", torch.rand(10, 1, 28, 28), torch.arange(10), "mnist", space="unit")
    m = ev.evaluate_set(ev.load_set(path), ev.load_protocol("fast", ["runs=1", "epochs=1", "models=[mlp,convnet]"]),
                        root=str(tmp_path), baselines=False)
    assert m["resolution"] == 28 and m["networks"] == ev.network_digests(["mlp", "convnet"], "mnist", 28)
    # the record tells the reference ConvNet from the one before it (first convolution padded by 1)
    # and one resolution from another
    assert ev.network_digests(["convnet"], "mnist")["convnet"] != ev.network_digests(["convnet_p1"], "mnist")["convnet_p1"]
    assert ev.network_digests(["convnet"], "cifar10", 32) != ev.network_digests(["convnet"], "cifar10", 64)


@needs_fashion_mnist
def test_protocol_learns_and_tells_real_from_noise():
    """A short schedule on 10 real images per class beats chance clearly; pure noise does not."""
    p = ev.load_protocol("fast", ["epochs=15", "runs=1", "dsa=none"])  # measured: real 71 %, noise 11 %
    train = load_split("fashion_mnist", "train")
    test = load_split("fashion_mnist", "test")
    test = (test.images[:1000], test.labels[:1000])
    x, y = train.random_subset(10, torch.Generator().manual_seed(0))
    real = ev.train_and_test("convnet", x, y, test, "fashion_mnist", p, seed=0)
    noise = ev.train_and_test("convnet", torch.randn_like(x), y, test, "fashion_mnist", p, seed=0)
    assert real > 0.5, real
    assert noise < 0.25 < real - 0.25, (real, noise)


@needs_fashion_mnist
def test_same_seed_same_accuracy():
    p = ev.load_protocol("fast", ["epochs=3", "runs=1"])
    x, y = load_split("fashion_mnist", "train").random_subset(2, torch.Generator().manual_seed(1))
    test = load_split("fashion_mnist", "test")
    test = (test.images[:500], test.labels[:500])
    a = ev.train_and_test("convnet", x, y, test, "fashion_mnist", p, seed=3)
    b = ev.train_and_test("convnet", x, y, test, "fashion_mnist", p, seed=3)
    assert a == b


def test_full_data_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache"))  # a cache of its own: other tests fill the shared one
    fake_mnist(tmp_path, n_train=60, n_test=20)
    p = ev.load_protocol("fast", ["full_data.epochs=1"])
    first = ev.full_data("mnist", "mlp", p, root=str(tmp_path))
    assert len(first["runs"]) == 1 and 0 <= first["mean"] <= 100
    files = list((ev.cache_dir() / "full_data").glob("mnist-mlp-*.json"))
    assert len(files) == 1

    def must_not_train(*a, **k):
        raise AssertionError("a cached result must not be recomputed")

    monkeypatch.setattr(ev, "train_network", must_not_train)
    assert ev.full_data("mnist", "mlp", p, root=str(tmp_path)) == first
    assert ev.full_data("mnist", "mlp", p, root=str(tmp_path), resolution=28) == first  # the native size, named
    with pytest.raises(AssertionError):  # another schedule is another key
        ev.full_data("mnist", "mlp", ev.load_protocol("fast", ["full_data.epochs=2"]), root=str(tmp_path))


def _killed_in_epoch(n, monkeypatch):
    """Make the n-th call of train_epoch raise KeyboardInterrupt; returns the list of calls."""
    calls, real_epoch = [], ev.train_epoch

    def train_epoch(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real_epoch(*a, **k)

    monkeypatch.setattr(ev, "train_epoch", train_epoch)
    return calls


def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_network(tmp_path, monkeypatch):
    x, y = torch.randn(40, 1, 28, 28), torch.arange(10).repeat(4)
    schedule = ev.load_protocol("fast", ["epochs=3", "batch=16", "dsa=color_crop_flip"])
    whole = ev.train_network("convnet", x, y, "mnist", schedule, seed=3)
    calls = _killed_in_epoch(3, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        ev.train_network("convnet", x, y, "mnist", schedule, seed=3, checkpoint=tmp_path / "c.pt")
    resumed = ev.train_network("convnet", x, y, "mnist", schedule, seed=3, checkpoint=tmp_path / "c.pt")
    assert len(calls) == 4  # 1, 2, the killed 3, then 3 again: 1 and 2 were not trained again
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # the same weights, shuffling and augmentation as without the kill


def test_training_a_network_leaves_the_callers_rng_where_it_was():
    from omegaconf import OmegaConf

    from genprior.nets import build_net

    x, y = torch.randn(20, 1, 28, 28), torch.arange(10).repeat(2)
    schedule = ev.load_protocol("fast", ["epochs=2", "batch=10", "dsa=color_crop_flip"])
    torch.manual_seed(123)
    before = torch.get_rng_state()
    trained = ev.train_network("convnet", x, y, "mnist", schedule, seed=3)
    # run.py judges curve points in the middle of a distillation: that must not reseed it
    assert torch.equal(torch.get_rng_state(), before)
    ev.train_runs("mlp", [(x, y)] * 2, (x, y), "mnist", OmegaConf.merge(schedule, {"batched": True}), [3, 4])
    assert torch.equal(torch.get_rng_state(), before)  # the runs trained together too
    torch.manual_seed(7)  # whatever the caller's state, the same network
    again = ev.train_network("convnet", x, y, "mnist", schedule, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))
    # and the init is still torch.manual_seed(seed)'s, as before: judged rows are kept under it
    init = ev.train_network("convnet", x, y, "mnist", OmegaConf.merge(schedule, {"epochs": 0}), seed=3)
    torch.manual_seed(3)
    expected = build_net("convnet", 1, 10, 28)
    assert all(torch.equal(a, b) for a, b in zip(init.state_dict().values(), expected.state_dict().values()))


def test_a_killed_full_data_run_keeps_its_epochs_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache"))
    fake_mnist(tmp_path, n_train=60, n_test=20)
    p = ev.load_protocol("fast", ["full_data.epochs=3", "full_data.batch=16"])
    calls = _killed_in_epoch(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        ev.full_data("mnist", "mlp", p, root=str(tmp_path))
    assert [f.suffix for f in (ev.cache_dir() / "full_data").iterdir()] == [".pt"]  # epoch 1 kept, no result
    ev.full_data("mnist", "mlp", p, root=str(tmp_path))
    assert len(calls) == 4  # epoch 1 was not trained again
    assert [f.suffix for f in (ev.cache_dir() / "full_data").iterdir()] == [".json"]  # the checkpoint is gone


def test_a_killed_judging_resumes_at_the_architecture_it_was_training(tmp_path, monkeypatch, capsys):
    fake_mnist(tmp_path, n_train=60, n_test=20)
    path = save_set(tmp_path / "s.safetensors", torch.rand(10, 1, 28, 28), torch.arange(10), "mnist", space="unit")
    args = [str(path), "protocol=fast", "runs=1", "models=[mlp,convnet]"]
    argv = args + ["epochs=1", "--no-baselines", "--data-root", str(tmp_path)]
    assert ev.main(argv + ["--out", str(tmp_path / "whole" / "metrics.json")]) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())["synthetic"]
    trained, real_train_runs = [], ev.train_runs

    def train_runs(model, *a, **k):
        trained.append(model)
        if model == "convnet" and kill:
            raise KeyboardInterrupt
        return real_train_runs(model, *a, **k)

    monkeypatch.setattr(ev, "train_runs", train_runs)
    kill = True
    assert ev.main(argv) == 130
    assert "stopped by SIGINT (exit 130); the architectures judged so far are kept in" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists() and len(list((tmp_path / "judged").iterdir())) == 1
    # another schedule decides another row: nothing kept is taken for it
    assert ev.main(args + ["epochs=2", "--no-baselines", "--data-root", str(tmp_path)]) == 130
    assert trained == ["mlp", "convnet", "mlp", "convnet"]
    kill = False
    assert ev.main(argv) == 0
    assert trained[4:] == ["convnet"]  # the finished architecture was not trained again
    resumed = json.loads((tmp_path / "metrics.json").read_text())["synthetic"]
    assert {m: r["runs"] for m, r in resumed.items()} == {m: r["runs"] for m, r in whole.items()}
    assert ev.main(argv) == 0 and trained[5:] == []  # judging a judged set again trains nothing
    # with one shared folder, the rows outlive the folder they were judged for
    monkeypatch.setenv("GENPRIOR_JUDGED_DIR", str(tmp_path / "shared"))
    assert ev.main(argv + ["--out", str(tmp_path / "a" / "metrics.json")]) == 0 and trained[5:] == ["mlp", "convnet"]
    assert ev.main(argv + ["--out", str(tmp_path / "b" / "metrics.json")]) == 0 and trained[7:] == []
    assert len(list((tmp_path / "shared").iterdir())) == 2 and not (tmp_path / "b" / "judged").exists()


def test_a_stopped_judging_names_what_it_kept(tmp_path, monkeypatch, capsys):
    def stopped(*a, **k):
        raise KeyboardInterrupt

    for name in ("full_data", "random_real", "evaluate_set"):
        monkeypatch.setattr(ev, name, stopped)
    full, out = str(ev.cache_dir() / "full_data"), tmp_path / "m" / "metrics.json"
    path = save_set(tmp_path / "s.safetensors", torch.rand(10, 1, 28, 28), torch.arange(10), "fashion_mnist", space="unit")

    def said(*argv) -> str:
        assert ev.main(list(argv)) == 130
        err = capsys.readouterr().err
        assert err.startswith("genprior-evaluate: stopped by SIGINT (exit 130); ") and err.count("\n") == 1, err
        return err

    err = said("--full-data", "--out", str(out))  # its epochs are in the cache, not beside --out
    assert f"kept in {full}: rerun the same command to go on" in err and "judged" not in err
    err = said("--random-real")  # without --out no row is kept: a rerun starts over
    assert "nothing is kept (with --out FILE" in err and "go on" not in err
    err = said("--random-real", "--out", str(out))
    assert f"kept in {tmp_path / 'm' / 'judged'}: rerun" in err and full not in err
    err = said(str(path))  # a set: its rows beside its metrics.json, the full-data baseline's epochs in the cache
    assert f"kept in {tmp_path / 'judged'}, the full-data baseline's finished epochs in {full}: rerun" in err
    err = said(str(path), "--no-baselines")
    assert f"kept in {tmp_path / 'judged'}: rerun the same command to go on" in err and full not in err


@needs_fashion_mnist
def test_cli_writes_metrics_for_a_set_file(tmp_path):
    train = load_split("fashion_mnist", "train")
    x, y = train.random_subset(1, torch.Generator().manual_seed(0))
    path = save_set(tmp_path / "synset.safetensors", denormalize(x, train.info), y, "fashion_mnist", space="unit")
    rc = ev.main([str(path), "protocol=fast", "runs=1", "epochs=5", "models=[mlp]", "--no-baselines"])
    assert rc == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ipc"] == 1 and metrics["space"] == "unit" and metrics["protocol_config"]["epochs"] == 5
    assert len(metrics["synthetic"]["mlp"]["runs"]) == 1


@pytest.mark.parametrize("argv,match", [
    (["--random-real", "dataset=imagenet21k"], "unknown data set 'imagenet21k'; valid: fashion_mnist"),
    (["--random-real", "ipc=0"], "ipc must be >= 1"),
    (["--random-real", "ipc=ten"], "ipc must be an integer"),
    (["--random-real", "protocol=slow"], "unknown protocol 'slow'; valid: cross_arch, dc_convnet, fast"),
    (["--random-real", "models=[resnet99]"], "models has unknown 'resnet99'; valid: alexnet, convnet"),
    (["--random-real", "runs=abc"], "runs must be an integer >= 1, got 'abc'"),
    (["--random-real", "runs=0"], "runs must be an integer >= 1, got 0"),
    (["--random-real", "epochs=0"], "epochs must be an integer >= 1, got 0"),
    (["--random-real", "lr=-0.1"], "lr must be a number > 0, got -0.1"),
    pytest.param(["--random-real", "--device", "cuda"], "--device cuda: this machine has no CUDA device; valid here: cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")),
    (["--random-real", "--device", "tpu0"], "--device tpu0 is not a torch device"),
    (["--random-real", "dsa=color_blur"], "valid ops: color"),
    (["missing.safetensors"], "not found"),
    ([], "give a synthetic set file"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, match, capsys, tmp_path):
    fake_mnist(tmp_path, n_train=20, n_test=10)
    assert ev.main(argv + ["--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err


def test_cli_rejects_mismatched_set(tmp_path, capsys):
    path = save_set(tmp_path / "rgb.safetensors", torch.rand(10, 3, 32, 32), torch.arange(10), "fashion_mnist")
    assert ev.main([str(path), "--no-baselines"]) == 2
    assert "needs 1x28x28" in capsys.readouterr().err


def test_cli_subprocess_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "genprior.evaluate", "--random-real", "dataset=nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0 and "valid:" in r.stderr


@pytest.mark.parametrize("model", ["convnet", "vit"])
def test_runs_trained_together_equal_runs_trained_one_by_one(model, monkeypatch):
    from omegaconf import OmegaConf

    schedule = OmegaConf.merge(ev.load_protocol("fast"), {"epochs": 3, "batch": 8, "dsa": "color_crop_cutout_flip_scale_rotate"})
    sets = [(torch.randn(12, 1, 28, 28, generator=torch.Generator().manual_seed(r)), torch.arange(12) % 10)
            for r in range(3)]
    small = {"convnet": {"width": 8, "depth": 2}, "vit": {"dim": 16, "depth": 1, "heads": 2, "mlp_dim": 16}}[model]
    real_build = ev.seeded_net  # how both paths build their networks
    monkeypatch.setattr(ev, "seeded_net", lambda name, *a, **kw: real_build(name, *a, **{**small, **kw}))
    one_by_one = [ev.train_network(model, x, y, "fashion_mnist", schedule, 7 + r) for r, (x, y) in enumerate(sets)]
    together = ev._train_together(model, sets, "fashion_mnist", schedule, [7, 8, 9], None, "cpu", "")
    for a, b in zip(one_by_one, together):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(next(together[0].parameters()), next(together[1].parameters()))  # runs differ


def test_a_protocol_with_three_runs_reports_three_different_accuracies(tmp_path):
    fake_mnist(tmp_path, n_train=60, n_test=40)
    p = ev.load_protocol("fast", ["runs=3", "epochs=2", "models=[mlp]", "batched=true"])
    out = ev.random_real("mnist", 2, p, root=str(tmp_path))
    assert len(set(out["mlp"]["runs"])) == 3, out
    assert out["mlp"]["wall_s"] >= 0  # what each architecture cost (here ~0.0 s), to plan a cross_arch comparison by


@pytest.mark.parametrize("batched", [False, True])
def test_a_diverged_run_is_counted_and_reported_not_fatal(batched):
    """One run whose loss turns NaN (here: a NaN pixel in its set) must not end the judging of the
    others, nor change them; it is counted at the accuracy it has and listed with its epoch."""
    from omegaconf import OmegaConf

    schedule = OmegaConf.merge(ev.load_protocol("fast"), {"epochs": 3, "batch": 8, "dsa": "none", "batched": batched})
    sets = [(torch.randn(12, 1, 28, 28, generator=torch.Generator().manual_seed(r)), torch.arange(12) % 10)
            for r in range(3)]
    sets[1][0][5, 0, 3, 3] = float("nan")
    test = (torch.randn(40, 1, 28, 28, generator=torch.Generator().manual_seed(9)), torch.arange(40) % 10)
    accs, diverged = ev.train_runs("mlp", sets, test, "fashion_mnist", schedule, [0, 1, 2])
    assert diverged == [{"run": 1, "epoch": 0}]
    clean, none = ev.train_runs("mlp", [sets[0], sets[2]], test, "fashion_mnist", schedule, [0, 2])
    assert none == [] and [accs[0], accs[2]] == pytest.approx(clean)
    row = ev._timed(lambda: (accs, diverged))
    assert row["diverged"] == diverged and len(row["runs"]) == 3
    assert accuracy_text(row).endswith("(1 of 3 runs diverged)")
    assert accuracy_text(ev._timed(lambda: (clean, none))) == f"{ev.stats(clean)['mean']:.2f} +- {ev.stats(clean)['std']:.2f}"


def test_a_judging_killed_inside_an_architecture_resumes_at_its_next_run(tmp_path, monkeypatch, capsys):
    fake_mnist(tmp_path, n_train=60, n_test=20)
    path = save_set(tmp_path / "s.safetensors", torch.rand(10, 1, 28, 28), torch.arange(10), "mnist", space="unit")
    argv = [str(path), "protocol=fast", "runs=3", "models=[mlp]", "epochs=1", "--no-baselines", "--data-root",
            str(tmp_path)]
    assert ev.main(argv + ["--out", str(tmp_path / "whole" / "metrics.json")]) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())["synthetic"]["mlp"]["runs"]
    seeds, real_train_network = [], ev.train_network

    def train_network(model, images, labels, dataset, schedule, seed, *a, **k):
        seeds.append(seed)
        if kill and len(seeds) == 2:
            raise KeyboardInterrupt
        return real_train_network(model, images, labels, dataset, schedule, seed, *a, **k)

    monkeypatch.setattr(ev, "train_network", train_network)
    kill = True
    assert ev.main(argv) == 130
    assert len(list((tmp_path / "judged").glob("mlp-*.run0.json"))) == 1  # the finished run is kept
    kill = False
    assert ev.main(argv) == 0
    assert seeds == [0, 1, 1, 2]  # run 0 was not trained again
    assert json.loads((tmp_path / "metrics.json").read_text())["synthetic"]["mlp"]["runs"] == whole
    assert [p.name.startswith("mlp-") and ".run" not in p.name for p in (tmp_path / "judged").iterdir()] == [True]


def test_a_kept_row_clears_run_files_a_kill_left_beside_it(tmp_path):
    key = {"model": "mlp", "set": "abc"}
    row = ev.kept_row(tmp_path, key, lambda run_file: {"mean": 1.0, "ran": str(run_file(0).name)})
    orphan = tmp_path / row["ran"]  # as if killed after the row was written, before the runs' files went
    orphan.write_text("{}")
    assert ev.kept_row(tmp_path, key, lambda run_file: pytest.fail("trained again")) == row
    assert not orphan.exists()


def test_a_row_finished_after_a_kill_counts_the_seconds_of_the_runs_kept_before(tmp_path):
    key = {"model": "mlp", "set": "abc"}

    def first_two_runs_kept(run_file):  # what a judging killed in its third run leaves
        for r, seconds in enumerate((10.0, 20.5)):
            run_file(r).write_text(json.dumps({"accuracy": 0.5, "diverged_at": None, "wall_s": seconds}))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ev.kept_row(tmp_path, key, first_two_runs_kept)
    row = ev.kept_row(tmp_path, key, lambda run_file: {"mean": 50.0, "wall_s": 5.0})  # the third run, 5 s
    assert row["wall_s"] == 35.5


@needs_fashion_mnist
def test_standardize_judges_a_set_blind_to_its_scale_and_offset_as_habas_evaluation():
    """protocol.standardize: every batch, training and test, at mean 0 and std 1 before augmentation."""
    p = ev.load_protocol("fast", ["epochs=60", "runs=1", "dsa=none"])  # 100 images: one SGD step an epoch
    train, test = load_split("fashion_mnist", "train"), load_split("fashion_mnist", "test")
    test = (test.images[:500], test.labels[:500])
    x, y = train.random_subset(10, torch.Generator().manual_seed(0))
    plain = [ev.train_and_test("mlp", s, y, test, "fashion_mnist", p, seed=0) for s in (x, 4 * x + 8)]
    p.standardize = True
    blind = [ev.train_and_test("mlp", s, y, test, "fashion_mnist", p, seed=0) for s in (x, 4 * x + 8)]
    assert abs(blind[0] - blind[1]) <= 0.004 and blind[0] > 0.5, (blind, plain)  # rounding aside, one training
    assert plain[0] - plain[1] > 0.05, (blind, plain)  # as they are, the moved set teaches other inputs (measured: 0.648 vs 0.556)


def test_a_schedule_key_at_the_value_earlier_rows_behaved_as_leaves_their_keys_alone():
    p = ev.load_protocol("fast", ["runs=1"])
    key = ev._row_key({"images": "x"}, "convnet", "fashion_mnist", "normalized", 28, p)
    assert "standardize" not in key["schedule"]  # rows judged before the option existed still answer
    p.standardize = True
    assert ev._row_key({"images": "x"}, "convnet", "fashion_mnist", "normalized", 28, p)["schedule"]["standardize"]
