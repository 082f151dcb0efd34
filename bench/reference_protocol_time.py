"""Seconds of the reference evaluator on the set bench/protocol_speed.py times, for a like-for-like figure.

    git -C <mirror of VICO-UoE/DatasetCondensation> archive HEAD | tar -x -C /tmp/dc_reference
    python bench/reference_protocol_time.py --checkout /tmp/dc_reference [--runs 2] [--epochs 1000]
    python bench/reference_protocol_time.py --checkout /tmp/dc_reference --pairs 4 --epochs 100

Runs the DC/DSA/DM authors' own `evaluate_synset` (utils.py of a checkout of
VICO-UoE/DatasetCondensation: imported from there, not part of genprior) with the settings
their main.py uses for DSA evaluation: their ConvNet for FashionMNIST (28 px, one channel, so
the first convolution is padded by 3), SGD lr 0.01 momentum 0.9 wd 5e-4, batch 256, lr x0.1
after epoch epochs//2 + 1, DSA color_crop_cutout_flip_scale_rotate in their "S" mode (one op
per batch), `epochs + 1` epochs (their loop's count), then one pass over the 10k test images.
The set is the one bench/protocol_speed.py trains by default (10 random real FashionMNIST
images per class, seed 0, normalized alike), so the seconds per run compare with its
`s_per_1000_epoch_run`; run it alone on the machine, as that one. Their get_network seeds
torch from the clock, so the accuracies vary between invocations: they only show the
training worked. Writes bench/results/reference_protocol_time_<device>.json.

This machine's speed drifts over hours by more than the two evaluators differ, so seconds
measured apart are no comparison. `--pairs K` is the comparison: K pairs, each the reference's
run then genprior's (genprior/evaluate.py train_network with the dc_convnet schedule, the
same epoch count and test pass), alternating in one process; it reports the median of the K
ratios genprior / reference.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from genprior.files import write_json
from resumable import RESULTS, command, machine, run_parts  # bench/resumable.py (the script's own folder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", required=True, help="a checkout (or archive) of VICO-UoE/DatasetCondensation")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--pairs", type=int, default=0, help="alternate K reference / genprior runs and compare")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    from genprior.host import retain_freed_memory

    retain_freed_memory()  # as run.py and genprior-evaluate do: the protocol as users run it (genprior/host.py)
    checkout = Path(a.checkout).resolve()
    if not (checkout / "utils.py").is_file() or not (checkout / "networks.py").is_file():
        sys.exit(f"reference_protocol_time.py: error: {checkout} has no utils.py and networks.py; "
                 f"give a checkout of VICO-UoE/DatasetCondensation")
    sys.path.insert(0, str(checkout))
    import utils as reference  # the checkout's utils.py

    augment = reference.DiffAugment

    def augment_dense(*args, **kwargs):
        # Under today's torch their crop op returns one-channel batches with strides
        # (784, 1, 28, 1), which the convolutions take for channels-last: the features come
        # out channels-last and their ConvNet's view() fails. A copy of the batch in the
        # standard layout (100 x 1 x 28 x 28, once a step) is all this changes.
        return augment(*args, **kwargs).clone(memory_format=torch.contiguous_format)

    reference.DiffAugment = augment_dense  # epoch() looks it up in utils' namespace

    from genprior.data import load_split

    images, labels = load_split("fashion_mnist", "train").random_subset(10, torch.Generator().manual_seed(0))
    test = load_split("fashion_mnist", "test")
    test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(test.images, test.labels),
                                              batch_size=256, shuffle=False, num_workers=0)
    args = SimpleNamespace(lr_net=0.01, epoch_eval_train=a.epochs, batch_train=256, device=a.device, dsa=True,
                           dsa_strategy="color_crop_cutout_flip_scale_rotate", dsa_param=reference.ParamDiffAug(),
                           dc_aug_param=None)

    def one_run(r: int) -> dict:
        net = reference.get_network("ConvNet", 1, 10, (28, 28))
        t0 = time.perf_counter()
        _, _, acc = reference.evaluate_synset(r, net, images, labels, test_loader, args)
        return {"wall_s": round(time.perf_counter() - t0, 1), "accuracy": round(acc * 100, 2)}

    if a.pairs:
        compare(a, one_run, images, labels, (test.images, test.labels))
        return
    parts = [(f"reference_convnet_run{r}_{a.epochs}ep", lambda r=r: one_run(r)) for r in range(a.runs)]
    results = run_parts(parts, RESULTS / f"reference_protocol_time_{a.device}.json",
                        {"set": "random real ipc10 seed 0", "checkout": "VICO-UoE/DatasetCondensation",
                         "machine": machine()},
                        lambda r: f"{r['wall_s']} s, {r['accuracy']} %")
    walls = [v["figures"]["wall_s"] for k, v in results.items() if k.endswith(f"_{a.epochs}ep")]
    print(f"reference evaluator, {a.epochs + 1} epochs + test pass: median {statistics.median(walls):.1f} s per run "
          f"over {len(walls)} runs")


def compare(a, reference_run, images, labels, test) -> None:
    """--pairs: reference and genprior alternately, one ratio per pair (drift cancels within a pair)."""
    from genprior.evaluate import load_protocol, test_accuracy, train_network

    schedule = load_protocol("dc_convnet", [f"epochs={a.epochs + 1}"])  # their loop runs epochs + 1 epochs

    def ours(r: int) -> dict:
        t0 = time.perf_counter()
        net = train_network("convnet", images, labels, "fashion_mnist", schedule, r, device=a.device)
        acc = test_accuracy(net, *test, device=a.device)
        return {"wall_s": round(time.perf_counter() - t0, 1), "accuracy": round(acc * 100, 2)}

    pairs = []
    for r in range(a.pairs):
        pairs.append({"reference": reference_run(r), "genprior": ours(r)})
        pairs[-1]["ratio"] = round(pairs[-1]["genprior"]["wall_s"] / pairs[-1]["reference"]["wall_s"], 3)
        print(f"pair {r + 1}/{a.pairs}: reference {pairs[-1]['reference']['wall_s']} s, genprior "
              f"{pairs[-1]['genprior']['wall_s']} s, ratio {pairs[-1]['ratio']}", flush=True)
    ratios = [q["ratio"] for q in pairs]
    out = RESULTS / f"reference_protocol_pairs_{a.device}.json"
    write_json(out, {"command": command(), "machine": machine(), "epochs": a.epochs + 1, "pairs": pairs,
                     "ratio_median": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)]})
    print(f"genprior / reference wall time, {a.epochs + 1} epochs + test pass: median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f}) over {a.pairs} pairs; wrote {out}")


if __name__ == "__main__":
    main()
