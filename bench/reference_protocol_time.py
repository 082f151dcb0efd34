"""Seconds of the reference evaluator on the set bench/protocol_speed.py times, for a like-for-like figure.

    git -C <mirror of VICO-UoE/DatasetCondensation> archive HEAD | tar -x -C /tmp/dc_reference
    python bench/reference_protocol_time.py --checkout /tmp/dc_reference [--runs 2] [--epochs 1000]

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
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from resumable import RESULTS, machine, run_parts  # bench/resumable.py (the script's own folder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", required=True, help="a checkout (or archive) of VICO-UoE/DatasetCondensation")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1000)
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

    parts = [(f"reference_convnet_run{r}_{a.epochs}ep", lambda r=r: one_run(r)) for r in range(a.runs)]
    results = run_parts(parts, RESULTS / f"reference_protocol_time_{a.device}.json",
                        {"set": "random real ipc10 seed 0", "checkout": "VICO-UoE/DatasetCondensation",
                         "machine": machine()},
                        lambda r: f"{r['wall_s']} s, {r['accuracy']} %")
    walls = [v["figures"]["wall_s"] for k, v in results.items() if k.endswith(f"_{a.epochs}ep")]
    print(f"reference evaluator, {a.epochs + 1} epochs + test pass: median {statistics.median(walls):.1f} s per run "
          f"over {len(walls)} runs")


if __name__ == "__main__":
    main()
