#!/usr/bin/env bash
# The CPU model-zoo report used for the README: every registered model of ours plus the spec's timm baselines
# (flops_latency.md §6), fp32, NCHW, eager, batch 1 at 224 – timm's CPU convention. Writes
# benchmark-infer-fp32-nchw-pt<ver>-cpu-bs1-224.{csv,md} and, with matplotlib installed, the two top-1 plots to $OUT.
# Timings need a quiet machine: nothing else running, and the same machine for every row of one report.
# Usage: benchmarks/zoo_cpu.sh [OUT] [extra `timm-tricks zoo` options, e.g. --pattern 'pyconv*', or
# --runtimes eager,fused,onnxruntime --threads 2 for the runtimes side by side (the file name then lists them)]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/zoo-cpu}"
shift || true
python -m timm_tricks zoo \
    --out "$OUT" \
    --baselines resnet50,resnet101,densenet121,resnetblur50,ghostnet_100 \
    --device cpu --batch-size 1 --input-size 3,224,224 \
    --warmup 5 --iters 20 \
    "$@"
