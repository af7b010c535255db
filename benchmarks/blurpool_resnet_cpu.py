"""CPU latency of the anti-aliased ResNets next to the plain ones (what the stride-1 3x3 convs and the blurs cost).

Side by side in one process: every repetition runs each model once, in a rotating order (A, B, C, ... then
B, C, ..., A), after warm-up, under `torch.inference_mode()`; the medians, their ratios to the plain ResNet of the
same depth and the fvcore MACs go to `results/blurpool_resnet_cpu.md` (or `--out`).

    python benchmarks/blurpool_resnet_cpu.py                    # batch 1 and 8 at 224, a few minutes on 2 cores
    python benchmarks/blurpool_resnet_cpu.py --reps 5 --batch 1 # quicker look
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
import timm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import timm_tricks  # noqa: F401,E402  (registers the models)
from timm_tricks.profile._fvcore import FlopCountAnalysis, silence  # noqa: E402

# model -> the plain ResNet it is compared with
MODELS = {
    'resnet18': 'resnet18',
    'blurpool_resnet18': 'resnet18',
    'resnet50': 'resnet50',
    'blurpool_resnet50': 'resnet50',
    'blurpool_resnet50_lpf2': 'resnet50',
    'resnetblur50': 'resnet50',  # timm's anti-aliased ResNet-50 (3x3 stem pool + blur, lpf3, unblurred shortcut)
}


def _cpu_name() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or 'unknown'


def _load() -> str:
    return ' / '.join(f'{v:.1f}' for v in os.getloadavg())


def _macs(model: torch.nn.Module, size: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return silence(FlopCountAnalysis(model, torch.randn(1, 3, size, size))).total() / 1e9


def bench(models, batch: int, size: int, warmup: int, reps: int):
    x = torch.randn(batch, 3, size, size)
    names = list(models)
    times = {n: [] for n in names}
    with torch.inference_mode():
        for n in names:
            for _ in range(warmup):
                models[n](x)
        for i in range(reps):
            order = names[i % len(names):] + names[:i % len(names)]
            for n in order:
                t0 = time.perf_counter()
                models[n](x)
                times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(t) * 1e3 for n, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--reps', type=int, default=9)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    parser.add_argument(
        '--out', default=str(Path(__file__).resolve().parents[1] / 'results' / 'blurpool_resnet_cpu.md'))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    models = {n: timm.create_model(n).eval() for n in MODELS}
    macs = {n: _macs(m, args.size) for n, m in models.items()}
    load_before = _load()
    results = {}
    for batch in args.batch:
        results[batch] = bench(models, batch, args.size, args.warmup, args.reps)
        print(f'batch {batch}: ' + ', '.join(f'{n} {t:.1f} ms' for n, t in results[batch].items()), flush=True)
    load_after = _load()

    lines = [
        '# BlurPool-ResNet CPU latency',
        '',
        f'Command: `python benchmarks/blurpool_resnet_cpu.py {" ".join(sys.argv[1:])}`'.rstrip() + '  ',
        f'CPU: {_cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__}, timm {timm.__version__}, '
        f'{torch.get_num_threads()} threads, input {args.size}x{args.size}, median of {args.reps} interleaved '
        f'repetitions after {args.warmup} warm-up runs, `torch.inference_mode()`, fp32, NCHW.  ',
        f'Load average (1/5/15 min) before: {load_before}, after: {load_after}. The machine was shared with other '
        'jobs while this ran, so absolute times are inflated and noisy; the ratios compare models measured side '
        'by side in the same repetitions.',
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
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text('\n'.join(lines))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
