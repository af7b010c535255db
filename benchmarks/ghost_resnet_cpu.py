"""CPU latency of Ghost-ResNet-50 (s = 2, s = 4) vs timm's resnet50 and timm's ghostnet_100 (reference member).

Side by side in one process: every repetition runs each model once, in a rotating order (A, B, C, D, then
B, C, D, A, ...), after warm-up, under `torch.inference_mode()`; the medians and their ratios go to
`results/ghost_resnet_cpu.md` (or `--out`). The MAC column is fvcore's total at 224 from the specs (not measured
here), to set the measured speed-up against the MAC reduction.

    python benchmarks/ghost_resnet_cpu.py                     # batch 1 and 8 at 224, ~2-4 minutes on 2 cores
    python benchmarks/ghost_resnet_cpu.py --reps 5 --batch 1  # quicker look
"""
import argparse
import os
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timm_tricks  # noqa: F401,E402  (registers the models)

from _common import (  # noqa: E402
    SHARED_MACHINE_NOTE,
    add_timing_args,
    cpu_name,
    load_average,
    set_threads,
    time_models,
    write_markdown,
)

# fvcore total at 1x3x224x224 (GMACs): specs/ghost.md §3 and specs/flops_latency.md §3
SPEC_GMACS = {'resnet50': 4.1115, 'ghost_resnet50': 2.1734, 'ghost_resnet50_s4': 1.2043, 'ghostnet_100': 0.1483}
MODELS = ('resnet50', 'ghost_resnet50', 'ghost_resnet50_s4', 'ghostnet_100')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_timing_args(parser, reps=11, warmup=3, out_name='ghost_resnet_cpu.md')
    args = parser.parse_args()
    set_threads(args.threads)

    torch.manual_seed(0)
    models = {n: timm.create_model(n).eval() for n in MODELS}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    load_before = load_average()
    results = {}
    for batch in args.batch:
        results[batch] = time_models(models, batch, args.size, args.warmup, args.reps)
        print(f'batch {batch}: ' + ', '.join(f'{n} {t:.1f} ms' for n, t in results[batch].items()), flush=True)
    load_after = load_average()

    lines = [
        '# Ghost-ResNet-50 CPU latency',
        '',
        f'Command: `python benchmarks/ghost_resnet_cpu.py {" ".join(sys.argv[1:])}`'.rstrip() + '  ',
        f'CPU: {cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__}, timm {timm.__version__}, '
        f'{torch.get_num_threads()} threads, input {args.size}x{args.size}, median of {args.reps} interleaved '
        f'repetitions after {args.warmup} warm-up runs, `torch.inference_mode()`, fp32, NCHW, eager.  ',
        f'Load average (1/5/15 min) before: {load_before}, after: {load_after}. {SHARED_MACHINE_NOTE}',
        '',
    ]
    for batch, res in results.items():
        base = res['resnet50']
        lines += [f'## Batch {batch}', '',
                  '| model | params (M) | GMACs @224 (spec) | MACs vs resnet50 | median ms | time vs resnet50 |',
                  '|---|---|---|---|---|---|']
        for n, t in res.items():
            gmacs = SPEC_GMACS[n] if args.size == 224 else float('nan')
            lines.append(f'| {n} | {params[n] / 1e6:.2f} | {gmacs:.3f} | {gmacs / SPEC_GMACS["resnet50"]:.3f} | '
                         f'{t:.1f} | {t / base:.3f} |')
        lines.append('')
    lines += [
        'Ratios < 1 = fewer MACs / faster than timm resnet50. `ghostnet_100` is timm\'s GhostNet 1.0x (reference '
        'member of the family, not ours). A Ghost module halves (s = 2) or quarters (s = 4) the dense MACs but adds '
        'a depth-wise conv, a second BatchNorm and a concatenation per layer: cheap in MACs, not free in time.',
        '',
    ]
    write_markdown(args.out, lines)


if __name__ == '__main__':
    main()
