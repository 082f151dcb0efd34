"""Peak memory of one step through a generative prior: the chunked backward vs plain autograd.

(The chunked backward: docs/design.md, "The constant-memory backward".)

    python bench/prior_memory.py [--preset glad=dm] [--ipc 1 10 50] [--chunk 50] [extra key=value ...]
    python bench/prior_memory.py --preset diffusion=dm --chunk 10 --ipc 1 10
    python bench/prior_memory.py --preset diffusion=dm --chunk 10 --ipc 50 --paths chunked pixel

One iteration of the preset's objective on FashionMNIST through the preset's generator
(the shipped StyleGAN2 or UNet; before the UNet exists, an untrained one of the same
architecture: memory does not depend on the weights). minimax=dm steps through the same
network as diffusion=dm, fine-tuned, so diffusion=dm measures it without the fine-tune.
"chunked" is what runs do: render every image without grad, take dL/dimages, re-render
`chunk` images at a time with grad. "plain" renders all images with grad and
backpropagates once, so the generator's activations for every image are alive together.
"pixel" is the same step on a pixel set of the same size: the objective's own memory
(DM's graph through the ConvNet for every synthetic image grows with IPC whatever the
parameterization), so chunked - pixel is the generator's share, the part the chunked path
keeps flat. Each configuration runs in its own subprocess; peak memory is the RSS
high-water mark (CPU) or max allocated (CUDA) above what the process held before the
iteration (on Linux the RSS high-water mark is reset right before it).
Writes bench/results/prior_memory_<preset>_<device>.json (glad=dm: glad_memory_<device>.json,
the name its first figures were committed under).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from resumable import RESULTS, rows_in_subprocesses  # bench/resumable.py (the script's own folder)

UNET = Path(__file__).resolve().parent.parent / "assets" / "generators" / "fashion_mnist_unet"


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return _status_mb("VmHWM")  # the RSS high-water mark since reset_peak()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")


def held_mb(device: str) -> float:
    return torch.cuda.memory_allocated() / 2**20 if device.startswith("cuda") else _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(ipc: int, path: str, chunk: int, preset: str, extra: list[str], device: str) -> dict:
    from genprior.context import RunContext
    from genprior.data import cache_dir, load_split
    from genprior.config import check, compose
    from genprior.run import build, distill_step
    from genprior.synsets.pixel import PixelSynset

    cfg = compose([preset, f"ipc={ipc}", f"chunk={chunk}", *extra, *_untrained_if_missing(preset)])
    plan = check(cfg)
    real = load_split("fashion_mnist", "train")
    synset, obj = build(plan, RunContext(real, ipc, cfg.seed, plan.dataset, cache_dir=cache_dir()))
    if path == "pixel":  # the objective's own share: the same step on a set that needs no generator
        synset = PixelSynset(real, ipc)
    synset = synset.to(device)
    units = list(range(obj.units()))
    autocast = lambda: torch.autocast(torch.device(device).type, enabled=False)  # noqa: E731
    distill_step(synset, obj, 0, units, chunk, autocast)  # warm-up: allocator pools, lazy inits
    synset.zero_grad(set_to_none=True)
    reset_peak(device)
    base = held_mb(device)
    t0 = time.perf_counter()
    if path in ("chunked", "pixel"):
        distill_step(synset, obj, 1, units, chunk, autocast)
    else:
        images = synset.render(torch.arange(len(synset), device=device))
        obj(images, synset.labels, 1, units).backward()
    seconds = time.perf_counter() - t0
    grads = sum(float(p.grad.abs().sum()) for p in synset.parameters() if p.grad is not None)
    return {"ipc": ipc, "path": path, "chunk": chunk, "preset": preset, "extra": extra,
            "peak_mb": round(peak_mb(device)), "held_before_mb": round(base),
            "peak_above_before_mb": round(peak_mb(device) - base), "seconds": round(seconds, 2),
            "grad_abs_sum": grads, "generator": "untrained" if _untrained_if_missing(preset) else "shipped"}


def _untrained_if_missing(preset: str) -> list[str]:
    """An override pointing a diffusion preset at an untrained UNet of the shipped architecture,
    written once to the cache, while the shipped one does not exist yet."""
    if not preset.startswith(("diffusion=", "minimax=")) or (UNET / "model_index.json").is_file():
        return []
    from diffusers import DDIMScheduler, UNet2DModel

    from generators.diffusion import save_diffusion
    from generators.train_diffusion import UNET_DEFAULTS
    from genprior.data import cache_dir

    folder = cache_dir() / "bench" / "untrained_fashion_mnist_unet"
    if not (folder / "model_index.json").is_file():
        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, num_class_embeds=11, **UNET_DEFAULTS)
        save_diffusion(unet, DDIMScheduler(clip_sample=False, timestep_spacing="trailing",
                                           prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2"),
                       folder, 10, 10, {"untrained": True})
    return [f"synset.generator={folder}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--preset", default="glad=dm")
    p.add_argument("--paths", nargs="+", default=["pixel", "chunked", "plain"], choices=["pixel", "chunked", "plain"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--one", nargs=2, metavar=("IPC", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("extra", nargs="*", help="more run.py overrides, e.g. synset.steps=5")
    a = p.parse_args()
    if a.one:
        print(json.dumps(worker(int(a.one[0]), a.one[1], a.chunk, a.preset, a.extra, a.device)))
        return
    configs = [[str(ipc), path, "--chunk", str(a.chunk), "--preset", a.preset, "--device", a.device, *a.extra]
               for ipc in a.ipc for path in a.paths]
    name = "glad_memory" if a.preset == "glad=dm" and not a.extra else f"prior_memory_{a.preset.replace('=', '_')}"
    rows_in_subprocesses(__file__, configs, RESULTS / f"{name}_{a.device}.json",
                         lambda row: f"ipc {row['ipc']:3d} {row['path']:8s}: peak {row['peak_above_before_mb']} MB "
                                     f"above the {row['held_before_mb']} MB held before, {row['seconds']} s")

if __name__ == "__main__":
    main()
