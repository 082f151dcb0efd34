import pytest
import torch

from genprior.errors import ConfigError
from genprior.setfile import check_against, load_set, save_set


def test_round_trip_with_lr_and_metadata(tmp_path):
    x, y = torch.randn(20, 1, 28, 28), torch.arange(20) % 10
    path = save_set(tmp_path / "s" / "synset.safetensors", x, y, "fashion_mnist", "normalized", lr=0.0123,
                    meta={"objective": "dm"})
    assert not list(path.parent.glob("*.tmp"))  # written atomically
    s = load_set(path)
    assert torch.equal(s.images, x) and torch.equal(s.labels, y)
    assert s.dataset == "fashion_mnist" and s.space == "normalized" and s.ipc == 2
    assert s.lr == pytest.approx(0.0123) and s.meta == {"objective": "dm"}


def test_foreign_torch_file_loads_safely(tmp_path):
    torch.save({"images": torch.rand(10, 3, 32, 32), "labels": torch.arange(10)}, tmp_path / "set.pt")
    s = load_set(tmp_path / "set.pt", dataset="cifar10")
    assert s.space == "unit" and s.lr is None and s.images.shape == (10, 3, 32, 32)
    with pytest.raises(ConfigError, match="dataset=NAME"):
        load_set(tmp_path / "set.pt")
    torch.save({"images": torch.rand(10, 3, 32, 32), "labels": torch.arange(10), "lr": 0.01}, tmp_path / "lr.pt")
    assert load_set(tmp_path / "lr.pt", dataset="cifar10").lr == pytest.approx(0.01)  # a plain-number lr
    torch.save({"images": [[0.5]], "labels": torch.arange(1)}, tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="images must be tensors"):
        load_set(tmp_path / "list.pt", dataset="cifar10")

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"images": Payload(), "labels": torch.arange(2)}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="weights_only"):
        load_set(tmp_path / "evil.pt", dataset="cifar10")


@pytest.mark.parametrize("images,labels,match", [
    (torch.randn(10, 28, 28), torch.arange(10), r"\[N, C, H, W\]"),
    (torch.randn(10, 1, 28, 28), torch.arange(9), "10 images but labels"),
    (torch.randn(10, 1, 28, 28), torch.zeros(10, 2, dtype=torch.long), "labels of shape"),
    (torch.randn(10, 1, 28, 28), torch.rand(10), "labels integer"),
])
def test_bad_tensors_are_one_clear_error(tmp_path, images, labels, match):
    from safetensors.torch import save_file

    save_file({"images": images, "labels": labels}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ConfigError, match=match):
        load_set(tmp_path / "bad.safetensors", dataset="fashion_mnist")


def test_missing_corrupt_and_incomplete_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_set(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ConfigError, match="not a readable safetensors"):
        load_set(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"images": torch.randn(2, 1, 4, 4)}, str(tmp_path / "half.safetensors"))
    with pytest.raises(ConfigError, match="no labels"):
        load_set(tmp_path / "half.safetensors", dataset="mnist")
    with pytest.raises(ConfigError, match="NaN"):
        save_set(tmp_path / "nan.safetensors", torch.full((2, 1, 4, 4), float("nan")), torch.arange(2), "mnist")


def test_check_against_the_data_set(tmp_path):
    s = load_set(save_set(tmp_path / "a.safetensors", torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 12]),
                          "cifar10"))
    with pytest.raises(ConfigError, match="needs 1x28x28"):
        check_against(s, 1, 28, 10, "a")
    with pytest.raises(ConfigError, match="labels span 0..12"):
        check_against(s, 3, 32, 10, "a")


def test_metadata_that_is_not_json_is_one_line_in_the_cli(tmp_path, capsys):
    from safetensors.torch import save_file

    from genprior.evaluate import main

    path = tmp_path / "bad.safetensors"
    save_file({"images": torch.randn(2, 1, 28, 28), "labels": torch.arange(2)}, str(path),
              metadata={"format": "genprior.set/1", "dataset": "mnist", "space": "unit", "extra": "{not json"})
    with pytest.raises(ConfigError, match="'extra' metadata is not valid JSON"):
        load_set(path)
    assert main([str(path), "protocol=fast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid JSON" in err and "Traceback" not in err


def test_the_same_set_is_the_same_bytes_and_its_header_is_sorted(tmp_path):
    import json
    import struct

    images, labels = torch.randn(3, 1, 4, 4), torch.arange(3)
    a = save_set(tmp_path / "a.safetensors", images, labels, "mnist", lr=0.1, meta={"z": 1, "a": 2})
    b = save_set(tmp_path / "b.safetensors", images.clone(), labels.clone(), "mnist", lr=0.1, meta={"a": 2, "z": 1})
    assert a.read_bytes() == b.read_bytes()
    raw = a.read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    s = load_set(a)
    assert torch.equal(s.images, images) and s.meta == {"a": 2, "z": 1} and s.lr == pytest.approx(0.1)
