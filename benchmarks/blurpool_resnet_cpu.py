"""CPU latency of the anti-aliased ResNets next to the plain ones (what the stride-1 3x3 convs and the blurs cost).

Side by side in one process: every repetition runs each model once, in a rotating order (A, B, C, ... then
B, C, ..., A), after warm-up, under `torch.inference_mode()`; the medians, their ratios to the plain ResNet of the
same depth and the fvcore MACs go to `results/blurpool_resnet_cpu.md` (or `--out`).

    python benchmarks/blurpool_resnet_cpu.py                    # batch 1 and 8 at 224, a few minutes on 2 cores
    python benchmarks/blurpool_resnet_cpu.py --reps 5 --batch 1 # quicker look
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timm_tricks  # noqa: F401,E402  (registers the models)
from timm_tricks.profile._fvcore import FlopCountAnalysis, silence  # noqa: E402

from _common import (  # noqa: E402
    SHARED_MACHINE_NOTE,
    add_timing_args,
    cpu_name,
    load_average,
    set_threads,
    time_models,
    write_markdown,
)

# model -> the plain ResNet it is compared with
MODELS = {
    'resnet18': 'resnet18',
    'blurpool_resnet18': 'resnet18',
    'resnet50': 'resnet50',
    'blurpool_resnet50': 'resnet50',
    'blurpool_resnet50_lpf2': 'resnet50',
    'resnetblur50': 'resnet50',  # timm's anti-aliased ResNet-50 (3x3 stem pool + blur, lpf3, unblurred shortcut)
}


def _macs(model: torch.nn.Module, size: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return silence(FlopCountAnalysis(model, torch.randn(1, 3, size, size))).total() / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_timing_args(parser, reps=9, warmup=2, out_name='blurpool_resnet_cpu.md')
    args = parser.parse_args()
    set_threads(args.threads)

    torch.manual_seed(0)
    models = {n: timm.create_model(n).eval() for n in MODELS}
    macs = {n: _macs(m, args.size) for n, m in models.items()}
    load_before = load_average()
    results = {}
    for batch in args.batch:
        results[batch] = time_models(models, batch, args.size, args.warmup, args.reps)
        print(f'batch {batch}: ' + ', '.join(f'{n} {t:.1f} ms' for n, t in results[batch].items()), flush=True)
    load_after = load_average()

    lines = [
        '# BlurPool-ResNet CPU latency',
        '',
        f'Command: `python benchmarks/blurpool_resnet_cpu.py {" ".join(sys.argv[1:])}`'.rstrip() + '  ',
        f'CPU: {cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__}, timm {timm.__version__}, '
        f'{torch.get_num_threads()} threads, input {args.size}x{args.size}, median of {args.reps} interleaved '
        f'repetitions after {args.warmup} warm-up runs, `torch.inference_mode()`, fp32, NCHW.  ',
        f'Load average (1/5/15 min) before: {load_before}, after: {load_after}. {SHARED_MACHINE_NOTE}',
        '',
    ]
    for batch, res in results.items():
        lines += [f'## Batch {batch}', '',
                  '| model | fvcore GMACs | median ms | time vs plain | MACs vs plain |', '|---|---|---|---|---|']
        for n, t in res.items():
            plain = MODELS[n]
            lines.append(f'| {n} | {macs[n]:.3f} | {t:.1f} | {t / res[plain]:.3f} | {macs[n] / macs[plain]:.3f} |')
        lines.append('')
    lines += [
        '"plain" = timm\'s ResNet of the same depth (torchvision topology). `resnetblur50` is timm\'s own',
        'anti-aliased ResNet-50 (a different function, see docs/blurpool_resnet.md), listed for reference.',
        '',
    ]
    write_markdown(args.out, lines)


if __name__ == '__main__':
    main()
