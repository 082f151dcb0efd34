"""Peak memory of one GLaD iteration: the chunked backward (DESIGN.md section 2) vs plain autograd.

    python bench/glad_memory.py [--ipc 1 10 50] [--chunk 50] [--objective dm] [--space w+]

One DM (or DC/MTT) iteration on FashionMNIST with the latents of the shipped StyleGAN2
(or, before it exists, an untrained one of the same architecture: memory does not
depend on the weights). "chunked" is what runs do: render every image without grad,
take dL/dimages, re-render `chunk` images at a time with grad. "plain" renders all
images with grad and backpropagates once, so the generator's activations for every image
are alive together. "pixel" is the same step on a pixel set of the same size: the
objective's own memory (DM's graph through the ConvNet for every synthetic image grows
with IPC whatever the parameterization), so chunked - pixel is the generator's share,
the part the chunked path keeps flat. Each configuration runs in its own subprocess; peak memory is the
RSS high-water mark (CPU) or max allocated (CUDA) above what the process held before the
iteration (on Linux the RSS high-water mark is reset right before it). Writes bench/results/glad_memory_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from resumable import RESULTS, rows_in_subprocesses  # bench/resumable.py (the script's own folder)

ASSET = Path(__file__).resolve().parent.parent / "assets" / "generators" / "fashion_mnist_stylegan2"


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


def worker(ipc: int, path: str, chunk: int, objective: str, space: str, device: str) -> dict:
    from generators.base import frozen
    from generators.io import load_generator
    from generators.stylegan2 import StyleGAN2
    from genprior.data import load_split
    from genprior.context import RunContext
    from genprior.run import check, compose, distill_step
    from genprior.synsets.gan import GanSynset
    from genprior.synsets.pixel import PixelSynset

    cfg = compose([f"objective={objective}", f"ipc={ipc}", f"chunk={chunk}"])
    real = load_split("fashion_mnist", "train")
    g = load_generator(ASSET) if ASSET.with_suffix(".json").is_file() else frozen(StyleGAN2(28, 1, 10))
    layer = 1 if space == "f" else None
    if path == "pixel":  # the objective's own share: the same step on a set that needs no generator
        synset = PixelSynset(real, ipc).to(device)
    else:
        synset = GanSynset(real, ipc, g, space=space, layer=layer).to(device)
    plan = check(cfg)
    obj = plan.objective.from_config(plan.objective_options, RunContext(real, ipc, cfg.seed, plan.dataset))
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
    return {"ipc": ipc, "path": path, "chunk": chunk, "objective": objective, "space": space,
            "peak_mb": round(peak_mb(device)), "held_before_mb": round(base),
            "peak_above_before_mb": round(peak_mb(device) - base), "seconds": round(seconds, 2),
            "grad_abs_sum": grads, "generator": "shipped" if ASSET.with_suffix(".json").is_file() else "untrained"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--objective", default="dm")
    p.add_argument("--space", default="w+")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--one", nargs=2, metavar=("IPC", "PATH"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(worker(int(a.one[0]), a.one[1], a.chunk, a.objective, a.space, a.device)))
        return
    configs = [[str(ipc), path, "--chunk", str(a.chunk), "--objective", a.objective, "--space", a.space,
                "--device", a.device] for ipc in a.ipc for path in ("pixel", "chunked", "plain")]
    rows_in_subprocesses(__file__, configs, RESULTS / f"glad_memory_{a.device}.json",
                         lambda row: f"ipc {row['ipc']:3d} {row['path']:8s}: peak {row['peak_above_before_mb']} MB "
                                     f"above the {row['held_before_mb']} MB held before, {row['seconds']} s")

if __name__ == "__main__":
    main()
