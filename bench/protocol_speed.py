"""Seconds of the accuracy protocol, one network after the other vs compiled vs all runs together.

    python bench/protocol_speed.py [--set runs/.../synset.safetensors] [--epochs 50] [--runs 5] [--models convnet]
    python bench/protocol_speed.py --models convnet resnet18 vgg11 alexnet vit --runs 3 --epochs 30 \
        --to-epochs 300 --test-images 2000

Trains `runs` networks per model on one set (default: 10 random real images per class of
FashionMNIST, an IPC-10 set) for `epochs` epochs of the dc_convnet schedule, three ways:
  sequential  one network after the other, eager (the published protocol's way)
  compiled    the same, the training forward through torch.compile (protocol.compile=true)
  batched     all runs as one vmapped network (protocol.batched=true)
and reports the wall time (training and test passes apart), the seconds per run of
--to-epochs epochs they extrapolate to (training scaled by epochs, plus one test pass:
an epoch costs the same all along a schedule), a total per way over the models (the
cross_arch protocol, with --models as in configs/protocol/cross_arch.yaml), and the
final test accuracy of each run (short schedules: the accuracies only show that the
three ways train alike). Compiling is timed apart (compile_s, once per architecture, as in
a protocol) and added once to the totals. --test-images N tests on the first N test images (every way
tests alike, so only the wall time shrinks) and scales the test pass in the extrapolation
to the whole split. The ratio to sequential is the figure to read; compare ratios
measured in one invocation, on an otherwise idle machine. Writes
bench/results/protocol_speed_<device>.json; rerunning skips finished parts.
"""
from __future__ import annotations

import argparse
import time

import torch

from resumable import RESULTS, machine, run_parts  # bench/resumable.py (the script's own folder)


def timed(how: str, model: str, sets, test, schedule, seeds, device, to_epochs: int, test_scale: float) -> dict:
    from omegaconf import OmegaConf

    import genprior.evaluate as ev

    schedule = OmegaConf.merge(schedule, {"compile": how == "compiled", "batched": how == "batched"})
    # The test pass costs the same every way and does not grow with epochs: time it apart,
    # so that the extrapolation to to_epochs scales the training only.
    testing, plain_test = [0.0], ev.test_accuracy

    def timed_test(*args, **kwargs):
        t = time.perf_counter()
        try:
            return plain_test(*args, **kwargs)
        finally:
            testing[0] += time.perf_counter() - t

    compile_s = 0.0
    if how == "compiled":  # compiled once per architecture and process, before the first run: timed apart,
        t0 = time.perf_counter()  # so that the extrapolation does not multiply it with the epochs
        warm_up_compiled(model, sets[0], schedule)
        compile_s = time.perf_counter() - t0
    ev.test_accuracy = timed_test
    try:
        t0 = time.perf_counter()
        accs, _ = ev.train_runs(model, sets, test, "fashion_mnist", schedule, seeds, None, device)
        wall = time.perf_counter() - t0
    finally:
        ev.test_accuracy = plain_test
    train = wall - testing[0]
    runs = len(seeds)
    return {"wall_s": round(wall + compile_s, 1), "compile_s": round(compile_s, 1),
            "train_s": round(train, 1), "test_s": round(testing[0], 1),
            f"s_per_{to_epochs}_epoch_run": round(train / runs * to_epochs / schedule.epochs
                                                     + testing[0] * test_scale / runs, 1),
            "accuracies": [round(a * 100, 2) for a in accs]}


def warm_up_compiled(model: str, subset, schedule) -> None:
    """One training step through genprior/training.py's compiled forward, which caches the
    compiled code per architecture: the runs after it reuse it, as a protocol's runs do."""
    import torch.nn.functional as F

    from genprior.data import dataset_info
    from genprior.nets import build_net
    from genprior.training import compiled_forward

    info = dataset_info("fashion_mnist")
    images, labels = subset
    with torch.random.fork_rng(devices=[]):
        net = build_net(model, info.channels, info.num_classes, images.shape[-1]).train()
        batch = min(len(labels), schedule.batch)  # the shape the runs train on
        F.cross_entropy(compiled_forward(net)(images[:batch]), labels[:batch]).backward()


def main() -> None:
    from genprior.data import load_split
    from genprior.evaluate import load_protocol
    from genprior.setfile import load_set

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", help="a saved set (default: 10 random real FashionMNIST images per class)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["convnet"])
    p.add_argument("--ways", nargs="+", default=["sequential", "compiled", "batched"])
    p.add_argument("--to-epochs", type=int, default=1000, help="the schedule length to extrapolate to")
    p.add_argument("--test-images", type=int, default=None, help="test on the first N test images only")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    from genprior.host import retain_freed_memory

    heap = retain_freed_memory()  # as run.py and genprior-evaluate do: the protocol as users run it (genprior/host.py)
    if a.set:
        s = load_set(a.set)
        images, labels = s.images, s.labels
    else:
        images, labels = load_split("fashion_mnist", "train").random_subset(10, torch.Generator().manual_seed(0))
    test = load_split("fashion_mnist", "test")
    n = min(a.test_images or len(test.labels), len(test.labels))
    test_scale = len(test.labels) / n
    test = (test.images[:n], test.labels[:n])
    schedule = load_protocol("dc_convnet", [f"epochs={a.epochs}"])
    seeds = list(range(a.runs))
    sets = [(images, labels)] * a.runs
    per_run = f"s_per_{a.to_epochs}_epoch_run"
    # parts timed before the benches applied retain_freed_memory keep their names; these are new
    part = "{}_{}_" + f"{a.runs}x{a.epochs}" + (f"_test{n}" if test_scale > 1 else "") + ("_heap" if heap else "")
    parts = [(part.format(model, how), lambda m=model, h=how: timed(h, m, sets, test, schedule, seeds,
                                                                                  a.device, a.to_epochs, test_scale))
             for model in a.models for how in a.ways]
    results = run_parts(parts, RESULTS / f"protocol_speed_{a.device}.json",
                        {"set": a.set or "random real ipc10 seed 0", "test_images": n, "machine": machine()},
                        lambda r: f"{r['wall_s']} s (training {r['train_s']} s, test passes {r['test_s']} s), "
                                  f"{r[per_run]} s per {a.to_epochs}-epoch run, {r['accuracies']}")
    if len(a.models) > 1:  # the protocol over all models, `runs` runs each, per way
        figures = {(m, how): results[part.format(m, how)]["figures"] for m in a.models for how in a.ways}
        total = {how: sum(f["train_s"] * a.to_epochs / a.epochs + f["test_s"] * test_scale + f.get("compile_s", 0)
                          for (m, w), f in figures.items() if w == how) for how in a.ways}
        print(f"{'+'.join(a.models)}, {a.runs} runs x {a.to_epochs} epochs each: "
              + ", ".join(f"{how} {s:.0f} s ({total[a.ways[0]] / s:.2f}x)" for how, s in total.items()))


if __name__ == "__main__":
    main()
