"""Where a protocol training step spends its time: the floor under any speed-up of the protocol.

    python bench/protocol_profile.py [--model convnet] [--batch 100] [--steps 20]

One training step of the protocol (SGD on a DSA-augmented batch of `batch` FashionMNIST
images; 100 = every image of an IPC-10 set, one step per epoch) timed eager and through
torch.compile (genprior/training.py), and the eager step broken down by operator and input
shape with torch.profiler. The convolutions' share of the eager step bounds what any
reorganization of the loop (compiling, batching the runs with vmap) can gain on this
machine with the same convolution kernels: a step cannot take less than its convolutions
(on CPU, torch.compile calls the same oneDNN convolutions). Writes
bench/results/protocol_profile_<device>.json; run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import time

import torch

from genprior.files import write_json
from resumable import RESULTS, command, machine  # bench/resumable.py (the script's own folder)


def main() -> None:
    from genprior.data import dataset_info, load_split
    from genprior.evaluate import _dsa, load_protocol
    from genprior.nets import build_net
    from genprior.training import compiled_forward, train_epoch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="convnet")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    info = dataset_info("fashion_mnist")
    x, y = load_split("fashion_mnist", "train").random_subset(a.batch // info.num_classes,
                                                              torch.Generator().manual_seed(0))
    dsa = _dsa(load_protocol("dc_convnet"), info)

    def steps(forward, net, n):  # n epochs of the protocol's training, one batch each
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        for i in range(n):
            train_epoch(net, opt, x, y, torch.arange(len(y)), len(y), dsa, lambda _: i, forward=forward)

    def ms_per_step(compiled: bool) -> float:
        torch.manual_seed(0)
        net = build_net(a.model, info.channels, info.num_classes, x.shape[-1])
        forward = compiled_forward(net) if compiled else net
        steps(forward, net, 3)  # warm-up (and, compiled, the compiling)
        t0 = time.perf_counter()
        steps(forward, net, a.steps)
        return (time.perf_counter() - t0) / a.steps * 1000

    eager, compiled = ms_per_step(False), ms_per_step(True)
    torch.manual_seed(0)
    net = build_net(a.model, info.channels, info.num_classes, x.shape[-1])
    steps(net, net, 3)
    with torch.profiler.profile(record_shapes=True) as prof:
        steps(net, net, a.steps)
    ops = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    rows = [{"op": e.key, "shapes": str(e.input_shapes)[:120],
             "ms_per_step": round(e.self_cpu_time_total / 1000 / a.steps, 2)} for e in ops[:12]]
    profiled = sum(e.self_cpu_time_total for e in ops) / 1000 / a.steps
    conv = sum(e.self_cpu_time_total for e in ops if "convolution" in e.key) / 1000 / a.steps
    figures = {"eager_ms_per_step": round(eager, 1), "compiled_ms_per_step": round(compiled, 1),
               "compiled_speedup": round(eager / compiled, 2),
               "profiled_eager_ms_per_step": round(profiled, 1), "convolutions_ms_per_step": round(conv, 1),
               "best_speedup_above_convolutions": round(eager / conv, 2), "top_ops": rows}
    out = RESULTS / f"protocol_profile_{'cuda' if torch.cuda.is_available() else 'cpu'}.json"
    write_json(out, {"figures": figures, "command": command(), "model": a.model, "batch": a.batch,
                     "machine": machine()})
    print(f"{a.model}, batch {a.batch}: eager {eager:.1f} ms/step, compiled {compiled:.1f} ms/step "
          f"({eager / compiled:.2f}x); convolutions {conv:.1f} of {profiled:.1f} profiled ms: with these kernels "
          f"no reorganization of the loop gets past {eager / conv:.2f}x; wrote {out}")
    for r in rows[:8]:
        print(f"  {r['ms_per_step']:8.2f} ms  {r['op']}  {r['shapes']}")


if __name__ == "__main__":
    main()
