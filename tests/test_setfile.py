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
