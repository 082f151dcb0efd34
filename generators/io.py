"""Saving and loading the project's own generators: `<stem>.safetensors` + `<stem>.json`.

The JSON says how to rebuild the module (architecture name + constructor kwargs) and how
it was made (command, steps, wall time, FID); the safetensors file holds the state dict,
buffers included (StyleGAN2's stored noise, BatchNorm statistics), so a loaded generator
decodes bit-identically to the saved one. Nothing is unpickled.

`load_generator` also takes the names of foreign generators (FOREIGN), e.g.
load_generator("gan_face_generate"); `open_generator` is what a config's path means:
one of those, or an NVlabs network pickle.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from generators.base import Generator, frozen
from generators.dcgan import DCGAN
from generators.foreign import load_gan_face_generate, load_nvlabs_pickle
from generators.stylegan2 import StyleGAN2
from genprior.errors import ConfigError, one_line
from genprior.files import save_safetensors, write_json
from genprior.shipped import shipped

FORMAT = "genprior.generator/1"
GENERATORS = {"stylegan2": StyleGAN2, "dcgan": DCGAN}
FOREIGN = {"gan_face_generate": load_gan_face_generate}


def build_generator(arch: str, **kwargs) -> Generator:
    if arch not in GENERATORS:
        raise ConfigError(f"unknown generator architecture {arch!r}; valid: {', '.join(GENERATORS)}")
    try:
        return GENERATORS[arch](**kwargs)
    except TypeError as e:  # a misspelt keyword: say which ones exist
        valid = list(inspect.signature(GENERATORS[arch]).parameters)
        raise ConfigError(f"{arch}: {e}; valid options: {', '.join(valid)}") from None


def generator_files(path: str | Path) -> tuple[Path, Path]:
    """(<stem>.safetensors, <stem>.json) for a stem or either file's path."""
    path = str(path)
    for suffix in (".safetensors", ".json"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return Path(path + ".safetensors"), Path(path + ".json")


def save_generator(g: Generator, path: str | Path, info: dict | None = None) -> Path:
    """Write each file atomically (tmp + rename), the weights first; returns the safetensors path.
    (A kill between the two leaves new weights beside the old JSON: rerun the save.)"""
    weights, config = generator_files(path)
    if g.arch not in GENERATORS:
        raise ConfigError(f"only the project's own generators are saved this way ({', '.join(GENERATORS)}), "
                          f"not {g.arch!r}")
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in g.state_dict().items()}
    doc = {"format": FORMAT, "arch": g.arch, "kwargs": g.config, "params": g.num_params(), "info": info or {}}
    save_safetensors(state, weights, {"format": FORMAT, "arch": g.arch})
    write_json(config, doc, sort_keys=True)
    return weights


def read_config(path: str | Path) -> dict:
    _, config = generator_files(path)
    try:
        doc = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{config} is not a readable generator config ({type(e).__name__})") from None
    if not isinstance(doc, dict) or "arch" not in doc or not isinstance(doc.get("kwargs", {}), dict):
        raise ConfigError(f"{config} is not a generator config (needs 'arch' and 'kwargs')")
    return doc


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """A saved generator (stem, .safetensors or .json path) or a FOREIGN name, frozen:
    eval mode, no parameter grads (gradients still reach the latents)."""
    if str(path) in FOREIGN:
        return FOREIGN[str(path)]().to(device)
    weights, config = generator_files(path)
    missing = [str(p) for p in (weights, config) if not p.is_file()]
    if missing:
        raise ConfigError(f"generator not found: {' and '.join(missing)} missing "
                          f"(foreign generators by name: {', '.join(FOREIGN)})")
    doc = read_config(config)
    g = build_generator(doc["arch"], **doc.get("kwargs", {}))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ConfigError(f"{weights} is not a readable safetensors file ({e})") from None
    try:
        g.load_state_dict(state)
    except RuntimeError as e:  # wrong keys or shapes: the two files do not belong together
        raise ConfigError(f"{weights} does not fit the {doc['arch']} described in {config} "
                          f"({one_line(e)})") from None
    g.info = doc.get("info", {})
    return frozen(g).to(device)


def open_generator(path: str, code_dir: str | None = None, allow_pickle: bool = False) -> Generator:
    """The GAN a config names, on CPU: a stem of our own format, a FOREIGN name, or an
    NVlabs network pickle (.pkl: needs code_dir, and allow_pickle=True because it runs code).

    A relative stem resolves against the working directory, else the shipped generators
    (genprior/shipped.py), so assets/generators/... works from anywhere."""
    if str(path).endswith(".pkl"):
        if not code_dir:
            raise ConfigError(f"{path} is an NVlabs network pickle: give synset.code_dir=<checkout of the "
                              "repository that wrote it> (and synset.allow_pickle=true if you trust the file)")
        return load_nvlabs_pickle(path, code_dir, allow_pickle)
    return load_generator(shipped(path))
