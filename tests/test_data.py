import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from genprior.data import (DATASETS, IMAGENETTE_WNIDS, denormalize, load_split, read_idx)
from genprior.errors import ConfigError
from tests.conftest import needs_fashion_mnist


def write_idx(path, array: np.ndarray, gz=True):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def fake_mnist(root, n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y, gz=False)  # plain and .gz both read
        out[prefix] = (x, y)
    return out


@needs_fashion_mnist
def test_fashion_mnist_real_files():
    train, test = load_split("fashion_mnist", "train"), load_split("fashion_mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    # normalized with the data set's own mean/std: the split should be ~zero-mean, unit-std
    assert abs(train.images.mean().item()) < 0.01 and abs(train.images.std().item() - 1) < 0.01
    unit = denormalize(train.images[:100], train.info)
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5


def test_idx_round_trip_and_resize(tmp_path):
    arrays = fake_mnist(tmp_path)
    s = load_split("mnist", "train", root=str(tmp_path))
    x, y = arrays["train"]
    assert s.labels.tolist() == y.tolist()
    assert torch.allclose(denormalize(s.images, s.info)[:, 0] * 255, torch.from_numpy(x).float(), atol=1e-3)
    t = load_split("mnist", "test", root=str(tmp_path), resolution=32)
    assert t.images.shape == (20, 1, 32, 32)


def test_truncated_idx_is_one_clear_error(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(path)


def test_cifar10_and_cifar100_python_batches(tmp_path):
    rng = np.random.default_rng(1)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(10, 3072), dtype=np.uint8)
        first = data if first is None else first
        pickle.dump({b"data": data, b"labels": list(range(10))}, open(c10 / name, "wb"))
    s = load_split("cifar10", "train", root=str(tmp_path))
    assert s.images.shape == (50, 3, 32, 32) and torch.bincount(s.labels).tolist() == [5] * 10
    # CIFAR rows are channel-major 3x32x32
    pix = denormalize(s.images[:1], s.info)[0] * 255
    assert torch.allclose(pix, torch.from_numpy(first[0].reshape(3, 32, 32)).float(), atol=1e-3)

    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    for name in ("train", "test"):
        pickle.dump({b"data": rng.integers(0, 256, size=(200, 3072), dtype=np.uint8),
                     b"fine_labels": list(range(100)) * 2, b"coarse_labels": [0] * 200}, open(c100 / name, "wb"))
    s = load_split("cifar100", "test", root=str(tmp_path))
    assert s.info.num_classes == 100 and s.labels.max().item() == 99


def test_cifar_loader_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pickle.dump({b"data": Evil(), b"labels": [0]}, open(c10 / name, "wb"))
    with pytest.raises(ConfigError, match="builtins.print"):
        load_split("cifar10", "test", root=str(tmp_path))


def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(2).integers(0, 256, size=(32, 32, 3, 12), dtype=np.uint8)
    y = np.array([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1]).reshape(-1, 1)  # SVHN writes digit 0 as 10
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    s = load_split("svhn", "test", root=str(tmp_path))
    assert s.images.shape == (12, 3, 32, 32)
    assert s.labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    pix = denormalize(s.images[3:4], s.info)[0] * 255
    assert torch.allclose(pix, torch.from_numpy(x[..., 3]).permute(2, 0, 1).float(), atol=1e-3)


def test_downloading_svhn_for_a_run_fetches_the_test_split_it_will_be_judged_on(tmp_path, monkeypatch):
    from scipy.io import savemat

    import genprior.data as data

    asked = []

    def download(cls_name, root, split):  # torchvision's SVHN fetches the one .mat file of `split`
        asked.append(split)
        x = np.zeros((32, 32, 3, 10), dtype=np.uint8)
        savemat(root / f"{split}_32x32.mat", {"X": x, "y": np.arange(1, 11).reshape(-1, 1)})

    monkeypatch.setattr(data, "_torchvision_download", download)
    assert len(load_split("svhn", "train", root=str(tmp_path), download=True).labels) == 10
    assert sorted(asked) == ["test", "train"]
    assert len(load_split("svhn", "test", root=str(tmp_path)).labels) == 10  # no download asked for
    # one copy in memory, whether the caller allowed a download or not; nothing fetched twice
    assert load_split("svhn", "train", root=str(tmp_path)) is load_split("svhn", "train", root=str(tmp_path),
                                                                          download=True)
    assert sorted(asked) == ["test", "train"]


def test_imagenette_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    for c, wnid in enumerate(IMAGENETTE_WNIDS):
        d = tmp_path / "imagenette2" / "val" / wnid
        d.mkdir(parents=True)
        for i in range(2):  # odd sizes: the loader resizes the short side and centre-crops
            arr = rng.integers(0, 256, size=(40 + 7 * i, 50, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"img{i}.png")
    s = load_split("imagenette", "test", root=str(tmp_path), resolution=32)
    assert s.images.shape == (20, 3, 32, 32)
    assert torch.bincount(s.labels).tolist() == [2] * 10
    with pytest.raises(ConfigError, match=r"\(32, 64, 128\)"):
        load_split("imagenette", "test", root=str(tmp_path), resolution=48)


def test_missing_and_unknown_data_sets(tmp_path):
    with pytest.raises(ConfigError, match="fashion_mnist"):
        load_split("fashion-mnist")
    with pytest.raises(ConfigError) as e:
        load_split("mnist", "train", root=str(tmp_path))
    msg = str(e.value)
    assert "not found" in msg and str(tmp_path) in msg and "download=True" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="valid: train, test"):
        load_split("mnist", "validation", root=str(tmp_path))


def test_class_sampler(tmp_path):
    fake_mnist(tmp_path, n_train=50)
    s = load_split("mnist", "train", root=str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x, y = s.sample_per_class(3, g)
    assert y.tolist() == [c for c in range(10) for _ in range(3)]
    for c in range(10):  # the images really are of their class, and distinct
        rows = x[3 * c:3 * c + 3].flatten(1)
        own = s.images[s.labels == c].flatten(1)
        assert all((own == r).all(1).any() for r in rows)
        assert len({tuple(r.tolist()) for r in rows}) == 3
    assert s.sample_class(4, 100).shape[0] == 5  # never more than the class holds
    with pytest.raises(ConfigError, match="smallest class"):
        s.random_subset(6)
    with pytest.raises(ConfigError, match=">= 1"):
        s.random_subset(0)
    a, _ = s.random_subset(2, torch.Generator().manual_seed(7))
    b, _ = s.random_subset(2, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_every_dataset_has_consistent_metadata():
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.channels
        assert info.num_classes in (10, 100)


def fake_cifar10(root, per_class=5):
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(10 * per_class // 5 if name != "test_batch" else 20, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(len(data))]
        pickle.dump({b"data": data, b"labels": labels}, open(folder / name, "wb"))


@pytest.mark.parametrize("command, hint", [
    (lambda root: __import__("genprior.run").run.main(["pixel=dm", "dataset=cifar10", f"dataset.root={root}",
                                                       "ipc=1", "iterations=1", "eval.enabled=false",
                                                       f"run_dir={root}/run"]),
     ["dataset.root=DIR", "dataset.download=true"]),
    (lambda root: __import__("genprior.evaluate").evaluate.main(["--random-real", "dataset=cifar10", "--data-root",
                                                                 str(root)]),
     ["--data-root DIR"]),
    (lambda root: __import__("genprior.experts").experts.main(["dataset=cifar10", f"data_root={root}"]),
     ["data_root=DIR"]),
])
def test_a_missing_data_set_names_the_keys_of_the_command_that_failed(command, hint, tmp_path, capsys):
    assert command(tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar10 not found" in err and all(h in err for h in hint), err
    assert "download=True" not in err and " root=DIR" not in err  # the Python API's names, not this command's
    if "dataset.root=DIR" in hint:  # and following the hint works
        fake_cifar10(tmp_path)
        assert command(tmp_path) == 0


def test_the_zca_of_a_data_set_stays_where_it_was_fitted_whatever_device_images_come_from(tmp_path):
    from genprior.data import _zca_on, from_unit, to_unit, zca_for

    fake_mnist(tmp_path, n_train=60, n_test=20)
    shared = zca_for("mnist", str(tmp_path), 28)
    assert _zca_on("mnist", str(tmp_path), 28, "cpu") is shared
    elsewhere = _zca_on("mnist", str(tmp_path), 28, "meta")  # any other device: a copy there
    assert next(elsewhere.buffers()).device.type == "meta" and next(shared.buffers()).device.type == "cpu"
    unit = torch.rand(2, 1, 28, 28)
    back = to_unit(from_unit(unit, "mnist", "zca", str(tmp_path)), "mnist", "zca", str(tmp_path))
    assert torch.allclose(back, unit, atol=1e-4)


def test_zca_at_a_resolution_whose_covariance_would_not_fit_is_one_line():
    from genprior.data import zca_for

    with pytest.raises(ConfigError, match=r"space zca at 128 px: a 49152-dim covariance \(18 GiB\)"):
        zca_for("imagenette", None, 128)  # refused before any file is read


def test_a_zca_split_too_large_to_whiten_is_refused_before_downloading(tmp_path):
    with pytest.raises(ConfigError, match="space zca at 128 px"):
        load_split("imagenette", "train", str(tmp_path), 128, download=True, space="zca")
    assert list(tmp_path.iterdir()) == []  # nothing fetched for a set that could not be used


@needs_fashion_mnist
def test_fashion_mnist_files_are_not_taken_for_mnist_at_the_top_of_a_root(tmp_path):
    import shutil

    from genprior.data import DEBIAN_FASHION_MNIST

    for f in DEBIAN_FASHION_MNIST.glob("t10k-*"):
        shutil.copy(f, tmp_path / f.name)  # the same file names as MNIST's, at the top of the root
    assert len(load_split("fashion_mnist", "test", root=str(tmp_path)).labels) == 10000
    with pytest.raises(ConfigError, match="holds fashion_mnist's IDX files, by their pixel mean 0.28"):
        load_split("mnist", "test", root=str(tmp_path))
