"""Baselines of the accuracy protocol on real data: random real subsets and the full train split.

    python bench/protocol_baselines.py [--dataset fashion_mnist] [--protocol dc_convnet] [--ipc 1 10] [KEY=VALUE ...]
    python bench/protocol_baselines.py compile=true --ipc     # only the full train split

(KEY=VALUE before a bare --ipc: after it they would be read as IPCs.)

KEY=VALUE are protocol overrides (e.g. compile=true). Writes
bench/results/protocol_baselines_<dataset>_<protocol>_<net>[_<overrides>].json, <net> being
the digest of the network (genprior.nets.net_digest), so figures of an earlier network never
mix with today's: one entry per part with its figures, wall time and the command that made it. Interrupted? Rerun the same command: finished
parts are kept and skipped (the full-data figure also sits in the protocol's cache).
"""
from __future__ import annotations

import argparse

import torch

from genprior.data import dataset_info
from genprior.evaluate import full_data, load_protocol, random_real
from genprior.nets import net_digest
from resumable import RESULTS, machine, run_parts, slug  # bench/resumable.py (the script's own folder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--protocol", default="dc_convnet")
    p.add_argument("--ipc", type=int, nargs="*", default=[1, 10], help="random-real IPCs (none: only full data)")
    p.add_argument("--model", default="convnet")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("overrides", nargs="*", help="protocol overrides, e.g. compile=true")
    a = p.parse_args()
    from genprior.host import retain_freed_memory

    retain_freed_memory()  # as run.py and genprior-evaluate do: the protocol as users run it (genprior/host.py)
    protocol = load_protocol(a.protocol, [f"models=[{a.model}]", *a.overrides])
    info = dataset_info(a.dataset)
    net = net_digest(a.model, info.channels, info.num_classes, info.resolution)
    name = "_".join([f"protocol_baselines_{a.dataset}_{a.protocol}_{a.model}-{net}",
                     *(slug(o) for o in a.overrides)])

    parts = [(f"random_real_ipc{ipc}", lambda ipc=ipc: random_real(a.dataset, ipc, protocol, device=a.device))
             for ipc in a.ipc]
    if not a.skip_full:
        parts.append((f"full_data_{protocol.full_data.name}",
                      lambda: {a.model: full_data(a.dataset, a.model, protocol, device=a.device)}))
    run_parts(parts, RESULTS / f"{name}.json",
              {"protocol": protocol.name, "machine": machine(device=a.device)},
              show=lambda figures: f"{figures[a.model]['mean']:.2f} +- {figures[a.model]['std']:.2f} %")


if __name__ == "__main__":
    main()
