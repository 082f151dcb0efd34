#!/usr/bin/env bash
# The README's cross-architecture comparisons, GLaD / HaBa / diffusion against pixels, under
# one named reduced protocol for every row: cross_arch (ConvNet, ResNet-18, VGG-11, AlexNet,
# ViT) with 3 runs x 300 epochs per architecture, compiled, the reference ConvNet.
#     bash bench/comparisons.sh          (many hours on a 2-core CPU; one heavy job at a time)
# Cheapest cells first (IPC 1 before IPC 10: judging an IPC 10 set takes about 65 min here,
# bench/results/protocol_speed_cpu.json), so every hour spent lands finished rows. Every part
# resumes, or is skipped once its result exists (bench/distill.py; a result judged by another
# network is rerun), and the pixel set of a cell is distilled and judged once for GLaD and
# HaBa alike (bench/prior_vs_pixel.py). Budgets per objective are those of the earlier
# single-run pilot, below the pixel presets' where a preset would not fit a session:
# DM 300 its, MTT 200 (5 experts x 8 epochs), DC 200 at IPC 1 and 40 at IPC 10.
set -euo pipefail
cd "$(dirname "$0")/.."
REDUCED=(protocol.runs=3 protocol.epochs=300 protocol.compile=true)
MTT=(objective.experts.num_experts=5 objective.experts.epochs=8 objective.max_start_epoch=4)
for ipc in 1 10; do
  if [ "$ipc" = 1 ]; then batch_syn=null; dc_its=200; else batch_syn=20; dc_its=40; fi
  for prior in glad haba; do
    python bench/prior_vs_pixel.py --prior "$prior" --objectives dm --ipc "$ipc" --iterations 300 \
      -- objective.compile=true "${REDUCED[@]}"
  done
  python bench/prior_vs_pixel.py --prior glad --sides prior --prior-overrides synset.init=invert \
    --objectives dm --ipc "$ipc" --iterations 300 -- objective.compile=true "${REDUCED[@]}"
  python bench/presets_table.py --presets diffusion=sample minimax=sample minimax=dm pixel=dm --ipc "$ipc" \
    -- protocol=cross_arch "${REDUCED[@]}"
  for prior in glad haba; do
    python bench/prior_vs_pixel.py --prior "$prior" --objectives mtt --ipc "$ipc" --iterations 200 \
      -- "${REDUCED[@]}" "${MTT[@]}" objective.batch_syn=$batch_syn
    python bench/prior_vs_pixel.py --prior "$prior" --objectives dc --ipc "$ipc" --iterations $dc_its \
      -- "${REDUCED[@]}"
  done
done
