"""Seconds per distillation iteration and peak memory, per objective, IPC and precision.

    python bench/iteration_time.py                        # dc dm mtt x IPC 1 10, fp32 and bf16
    python bench/iteration_time.py --objectives dm --ipc 10 --precision bf16 --iters 10

Every configuration runs in a subprocess of its own, so its peak memory (RSS on CPU,
max allocated on CUDA) is its own. The loop body is genprior.run.distill_step, the one
the runs execute. `dm_reference` is DM written as the original code is (one class at a
time, real embeddings computed with autograd on and detached afterwards), timed on the
same machine in the same run, so the speed-up is a ratio measured under one condition.
MTT is timed on random-walk trajectories of the right size (building experts is not
what is measured). The allocator is set up as run.py sets it (genprior/host.py); run with
GENPRIOR_MALLOC=default and another --out to time glibc's default behaviour.
Writes bench/results/iteration_time_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch

from resumable import RESULTS, rows_in_subprocesses  # bench/resumable.py (the script's own folder)

# bench name -> (preset, overrides); other names are presets as they are
VARIANTS = {"dm_reference": ("dm", []), "dm_compiled": ("dm", ["objective.compile=true"]),
            "mtt_constant_memory": ("mtt", ["objective.mode=constant_memory"])}


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def worker(objective: str, ipc: int, precision: str, iters: int, device: str, extra: list[str]) -> dict:
    from genprior.data import load_split
    from genprior.host import retain_freed_memory
    from genprior.objectives import MTT
    from genprior.context import RunContext
    from genprior.config import check, compose
    from genprior.run import distill_step

    allocator = "retain" if retain_freed_memory() else "default"  # as run.py does; GENPRIOR_MALLOC=default: not
    preset, variant = VARIANTS.get(objective, (objective, []))
    cfg = compose([f"pixel={preset}", f"ipc={ipc}", *variant, *extra])
    d = cfg.dataset
    real = load_split(d.name, "train", d.root, d.resolution, space=d.space)
    plan = check(cfg)
    ctx = RunContext(real, cfg.ipc, cfg.seed, plan.dataset)
    synset = plan.synset.from_config(plan.synset_options, ctx).to(device)
    if cfg.objective.kind == "mtt":
        o = dict(cfg.objective)
        trajectories = [_random_walk(cfg, real, o) for _ in range(2)]
        obj = MTT(real, trajectories, net=o["net"], net_kwargs=o["net_kwargs"], syn_steps=o["syn_steps"],
                  expert_epochs=o["expert_epochs"], max_start_epoch=o["max_start_epoch"], batch_syn=o["batch_syn"],
                  dsa=o["dsa"], mode=o["mode"])
        synset.learn_lr(o["init_lr"])
        synset.to(device)
    else:
        obj = plan.objective.from_config(plan.objective_options, ctx)
    if objective == "dm_reference":
        obj = _ReferenceDM(obj)
    base = peak_mb(device)
    autocast = (lambda: torch.autocast(torch.device(device).type, torch.bfloat16, enabled=precision == "bf16"))
    units = list(range(obj.units()))
    times = []
    for step in range(iters + 1):  # the first is warm-up
        t0 = time.perf_counter()
        distill_step(synset, obj, step, units, cfg.chunk, autocast)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        synset.zero_grad(set_to_none=True)
    return {"objective": objective, "ipc": ipc, "precision": precision, "median_s": round(statistics.median(times[1:]), 4),
            "first_s": round(times[0], 3), "all_s": [round(t, 4) for t in times[1:]], "peak_mb": round(peak_mb(device)), "peak_after_data_mb": round(base),
            "allocator": allocator}


def _random_walk(cfg, real, o):
    from genprior.nets import build_net

    net = build_net(o["net"], real.info.channels, real.info.num_classes, real.images.shape[-1], **(o["net_kwargs"] or {}))
    p = sum(q.numel() for q in net.parameters())
    epochs = o["max_start_epoch"] + o["expert_epochs"]
    return torch.cumsum(torch.randn(epochs + 1, p) * 1e-3, 0)


class _ReferenceDM:
    """DM as the original code computes it: a Python loop over classes, real embeddings with autograd on."""

    def __init__(self, dm):
        self.dm = dm

    def units(self):
        return self.dm.units()

    def __call__(self, images, labels, step, units, lr=None):
        from genprior.objectives.common import class_batches, fresh_net
        from genprior.rng import derive_seed

        d = self.dm
        net = fresh_net(d.net_name, d.real, derive_seed(d.seed, step), images.device, **d.net_kwargs)
        for p in net.parameters():
            p.requires_grad_(False)
        loss = images.new_zeros(())
        for _, real_c, syn_c in class_batches(d.real, images, labels, units, d.batch_real, d.dsa, d.seed, step):
            e_real = net.embed(real_c).detach()
            loss = loss + ((e_real.mean(0) - net.embed(syn_c).mean(0)) ** 2).sum()
        return loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", nargs="+", default=["dm_reference", "dm", "dm_compiled", "dc", "mtt",
                                                         "mtt_constant_memory"])
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None)
    p.add_argument("--one", nargs=3, metavar=("OBJECTIVE", "IPC", "PRECISION"), help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="run.py overrides applied to every configuration")
    a = p.parse_args()
    if a.one:
        print(json.dumps(worker(a.one[0], int(a.one[1]), a.one[2], a.iters, a.device, a.overrides)))
        return
    out = Path(a.out) if a.out else RESULTS / f"iteration_time_{a.device}.json"
    configs = [[objective, str(ipc), precision, "--iters", str(a.iters), "--device", a.device, *a.overrides]
               for objective in a.objectives for ipc in a.ipc for precision in a.precision]
    rows_in_subprocesses(__file__, configs, out, lambda row: f"{row['objective']:13s} ipc{row['ipc']:<3d} "
                         f"{row['precision']}: {row['median_s']:.3f} s/it, peak {row['peak_mb']} MB")

if __name__ == "__main__":
    main()
