"""CPU latency of the CSP models next to their plain networks, measured side by side in one run.

Pairs: cspdensenet121 / timm densenet121, cspdensenet201 / timm densenet201, csppeleenet / a plain PeleeNet built
here from the same layer modules (official topology: dense block on the full width, transition conv then 2x2
average pool; 2,802,248 parameters, spec csp_densenet.md §4). Models of a pair are interleaved per repetition
(A, B, A, B, ...) after warm-up, under torch.inference_mode(), at 224x224, batch 1 and 8; medians are reported.

    python benchmarks/csp_densenet_cpu.py [--reps 7] [--threads N] [--out results/csp_densenet_cpu.md]
"""
import argparse
import os
import platform
import statistics
import time

import timm
import torch
from torch import nn

import timm_tricks  # noqa: F401
from timm_tricks.models.csp_densenet import ConvNormAct, PeleeStemBlock, TwoWayDenseLayer

import _common as common

PLAIN_PELEENET_PARAMS = 2_802_248


class PlainPeleeNet(nn.Module):
    """PeleeNet (Wang et al. 2018) from our layer modules, for a like-for-like latency comparison."""

    def __init__(self, block_config=(3, 4, 8, 6), bottleneck_widths=(1, 2, 4, 4), growth_rate=32, num_classes=1000):
        super().__init__()
        layers = [ConvNormAct(3, 32, 3, stride=2), PeleeStemBlock(32)]
        chs = 32
        for i, (n, bw) in enumerate(zip(block_config, bottleneck_widths)):
            for j in range(n):
                layers.append(TwoWayDenseLayer(chs + j * growth_rate, growth_rate, bw))
            chs += n * growth_rate
            layers.append(ConvNormAct(chs, chs, 1))
            if i < len(block_config) - 1:
                layers.append(nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chs, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def measure_pair(a: nn.Module, b: nn.Module, batch: int, reps: int, warmup: int = 2):
    x = torch.randn(batch, 3, 224, 224)
    times = ([], [])
    with torch.inference_mode():
        for _ in range(warmup):
            a(x)
            b(x)
        for _ in range(reps):
            for model, store in ((a, times[0]), (b, times[1])):
                t0 = time.perf_counter()
                model(x)
                store.append(time.perf_counter() - t0)
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reps', type=int, default=7)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--out', default=str(common.ROOT / 'results' / 'csp_densenet_cpu.md'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    plain_pelee = PlainPeleeNet().eval()
    n_plain = sum(p.numel() for p in plain_pelee.parameters())
    assert n_plain == PLAIN_PELEENET_PARAMS, n_plain
    pairs = [
        ('cspdensenet121', timm.create_model('cspdensenet121').eval(),
         'densenet121', timm.create_model('densenet121').eval()),
        ('cspdensenet201', timm.create_model('cspdensenet201').eval(),
         'densenet201', timm.create_model('densenet201').eval()),
        ('csppeleenet', timm.create_model('csppeleenet').eval(), 'PeleeNet (plain)', plain_pelee),
    ]
    rows = []
    for name_a, a, name_b, b in pairs:
        for batch in (1, 8):
            ms_a, ms_b = measure_pair(a, b, batch, args.reps)
            rows.append((name_a, name_b, batch, ms_a, ms_b))
            print(f'{name_a:16s} {ms_a:8.1f} ms | {name_b:16s} {ms_b:8.1f} ms | batch {batch} | '
                  f'CSP / plain {ms_a / ms_b:.3f}', flush=True)

    lines = [
        '# CSP-DenseNet family: CPU latency vs the plain networks',
        '',
        f'Produced by `python benchmarks/csp_densenet_cpu.py --reps {args.reps} --threads {args.threads}`.',
        '',
        f'- CPU: {common.cpu_name()}, {torch.get_num_threads()} torch threads ({os.cpu_count()} cores visible)',
        f'- torch {torch.__version__}, timm {timm.__version__}, Python {platform.python_version()}',
        '- 224x224, eval, `torch.inference_mode()`, 2 warm-up runs, '
        f'median of {args.reps} interleaved runs (A, B, A, B, ...)',
        '- The machine was shared with other jobs while this ran: absolute times are noisy; the ratios, taken from '
        'interleaved runs, are the figures to read.',
        '',
        '| CSP model | plain model | batch | CSP ms | plain ms | CSP / plain |',
        '|---|---|---|---|---|---|',
    ]
    for name_a, name_b, batch, ms_a, ms_b in rows:
        lines.append(f'| {name_a} | {name_b} | {batch} | {ms_a:.1f} | {ms_b:.1f} | {ms_a / ms_b:.3f} |')
    lines += [
        '',
        'fvcore MACs at 224 (spec csp_densenet.md §4): cspdensenet121 2.624 G vs densenet121 2.866 G (0.916); '
        'cspdensenet201 4.082 G vs densenet201 4.341 G (0.940); csppeleenet 0.444 G vs PeleeNet 0.514 G (0.865).',
        '',
    ]
    common.write_markdown(args.out, lines)


if __name__ == '__main__':
    main()
