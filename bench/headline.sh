#!/usr/bin/env bash
# The README's headline figures under the published protocol (dc_convnet: 5 runs x 1000 epochs,
# the reference ConvNet), one part after the other; every part resumes or is skipped when its
# result exists, so rerunning this script after an interruption continues where it stopped.
#     bash bench/headline.sh            (about 8 h on a 2-core CPU; one heavy job at a time)
# protocol.compile=true: the same training to float rounding, 1.55x faster on CPU
# (bench/results/protocol_speed_cpu.json; tests/test_training.py trains eager and compiled alike).
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/protocol_baselines.py --ipc 1 10 --skip-full compile=true
python bench/distill.py pixel=dc ipc=1 eval.baselines=false protocol.compile=true
python bench/distill.py pixel=dm ipc=10 objective.compile=true eval.baselines=false protocol.compile=true
python bench/distill.py pixel=mtt ipc=1 eval.baselines=false protocol.compile=true
python bench/distill.py pixel=mtt ipc=10 objective.batch_syn=20 iterations=200 eval.baselines=false protocol.compile=true
python bench/protocol_baselines.py compile=true --ipc   # no IPCs: only the full train split (large_set_20ep, ~1 h)
