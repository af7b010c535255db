"""CPU latency of Ghost-ResNet-50 (s = 2, s = 4) vs timm's resnet50 and timm's ghostnet_100 (reference member).

Side by side in one process: every repetition runs each model once, in a rotating order (A, B, C, D, then
B, C, D, A, ...), after warm-up, under `torch.inference_mode()`; the medians and their ratios go to
`results/ghost_resnet_cpu.md` (or `--out`). The MAC column is fvcore's total at 224 from the specs (not measured
here), to set the measured speed-up against the MAC reduction.

    python benchmarks/ghost_resnet_cpu.py                     # batch 1 and 8 at 224, ~2-4 minutes on 2 cores
    python benchmarks/ghost_resnet_cpu.py --reps 5 --batch 1  # quicker look
"""

import timm
import torch

import timm_tricks  # noqa: F401  (registers the models)

import _common as common

# fvcore total at 1x3x224x224 (GMACs): specs/ghost.md §3 and specs/flops_latency.md §3
SPEC_GMACS = {'resnet50': 4.1115, 'ghost_resnet50': 2.1734, 'ghost_resnet50_s4': 1.2043, 'ghostnet_100': 0.1483}
MODELS = ('resnet50', 'ghost_resnet50', 'ghost_resnet50_s4', 'ghostnet_100')


def main():
    parser = common.timing_parser(__doc__, reps=11, warmup=3, out_name='ghost_resnet_cpu.md')
    args = common.parse_timing_args(parser)

    torch.manual_seed(0)
    models = {n: timm.create_model(n).eval() for n in MODELS}
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    load_before = common.load_average()
    results = common.time_models(models, args)

    lines = [
        '# Ghost-ResNet-50 CPU latency',
        '',
        *common.report_header(args, 'fp32, NCHW, eager', load_before),
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
    common.write_markdown(args.out, lines)


if __name__ == '__main__':
    main()
