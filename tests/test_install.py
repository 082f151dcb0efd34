"""A non-editable install carries its configs and shipped generators and runs from any directory."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_fashion_mnist

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "genprior", "generators", "configs", "assets")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install <checkout>` (a wheel build, not editable) into a folder of its own."""
    base = tmp_path_factory.mktemp("install")
    source, target = base / "source", base / "site"
    source.mkdir()
    for name in SOURCES:  # a copy, so the build's own folders never land in the checkout
        src = CHECKOUT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, capture_output=True)
    shutil.rmtree(source)  # nothing may still point into the source tree
    return target


def _env(site: Path) -> dict:
    # the installed copy first on the path, ahead of the editable checkout this venv holds
    return dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")


def test_installed_package_finds_its_configs_and_generators(installed, tmp_path):
    code = "import genprior, genprior.shipped as s; print(genprior.__file__, s.CONFIG_DIR, s.ASSETS_DIR, sep='\\n')"
    lines = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(installed), capture_output=True,
                           text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(installed) for p in lines), lines
    assert (Path(lines[1]) / "config.yaml").is_file() and (Path(lines[1]) / "protocol" / "dc_convnet.yaml").is_file()
    assert (Path(lines[2]) / "generators" / "fashion_mnist_stylegan2.safetensors").is_file()
    assert (Path(lines[2]) / "generators" / "fashion_mnist_unet" / "unet" / "config.json").is_file()
    assert (installed / "bin" / "genprior-run").is_file()


@needs_fashion_mnist
def test_installed_package_runs_from_an_empty_directory(installed, tmp_path):
    env = _env(installed)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "genprior.run"]
    subprocess.run([*launch, "pixel=dm", "ipc=1", "iterations=2", "eval.enabled=false"], cwd=tmp_path, env=env,
                   check=True, capture_output=True)
    assert (tmp_path / "runs" / "fashion_mnist" / "pixel-dm-ipc1-seed0" / "synset.safetensors").is_file()
    # the console script, with the shipped StyleGAN2 (assets/generators/... resolves inside the package)
    subprocess.run([str(installed / "bin" / "genprior-run"), "glad=dm", "ipc=1", "iterations=2",
                    "eval.enabled=false"], cwd=tmp_path, env=env, check=True, capture_output=True)
    glad = tmp_path / "runs" / "fashion_mnist" / "gan-dm-ipc1-seed0"
    assert (glad / "latents.safetensors").is_file()
