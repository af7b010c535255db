"""OctResNet-50 vs timm's ResNet-50 on this CPU: inference latency side by side, written to results/oct_cpu.md.

    python benchmarks/oct_cpu.py            # ~3-6 minutes on 2 cores
    python benchmarks/oct_cpu.py --quick    # fewer repetitions, for a smoke test
    python benchmarks/oct_cpu.py --ab       # only the NCHW ablations, more repetitions, printed

Every model variant runs in one process, interleaved per repetition (A, B, C, A, B, C, ...), after warm-up, under
`torch.inference_mode()`, batch 1 and 8 at 224x224, eval, float32. Two clocks:

* wall: `time.perf_counter()` with torch's default thread count (what a user sees on an idle machine);
* cpu: `time.thread_time()` of a single-threaded run (torch.set_num_threads(1)): CPU time actually spent, which
  other processes on a shared machine disturb far less than wall time.

Variants: timm `resnet50` and our `oct_resnet50` in NCHW and channels_last (weights and input converted), plus
two ablations of ours: `native-ops` (NCHW, torch's avg_pool2d / upsample_nearest2d kernels instead of our
slice/broadcast fast path) and `fused` (NCHW, the paths that share an output fused into one conv per output
frequency at each input resolution, weights concatenated once; the layout we did not adopt).
"""
import argparse
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional

import timm
import torch
import torch.nn.functional as F

import timm_tricks  # noqa: F401  (registers oct_resnet50)
from timm_tricks.layers import octconv
from timm_tricks.layers.octconv import OctaveConv2d

import _common as common

CL = torch.channels_last


# ------------------------------------------------------------------------------------------------ ablations

def _native_pool(x):
    return F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


def _native_add_upsampled(x_h, x_l):
    return x_h + F.interpolate(x_l, size=[x_h.shape[-2], x_h.shape[-1]], mode='nearest')


@contextmanager
def native_ops(enabled: bool):
    """Swap the layer's NCHW fast path for torch's native kernels (module globals used by OctaveConv2d.forward)."""
    if not enabled:
        yield
        return
    saved = octconv.octave_pool, octconv.add_upsampled
    octconv.octave_pool, octconv.add_upsampled = _native_pool, _native_add_upsampled
    try:
        yield
    finally:
        octconv.octave_pool, octconv.add_upsampled = saved


def _fused_forward(self, x_h, x_l=None):
    """One conv per output frequency and input resolution: [h2l | l2l] on concat(pool(x_h), x_l) at any stride,
    [h2h | l2h] on concat(x_h, x_l) at stride 2 (same maths, weights concatenated along input channels)."""
    if self.stride == 2:
        x_h = octconv.octave_pool(x_h)
    if self.conv_l2h is not None and self.stride == 2:
        y_h = F.conv2d(torch.cat([x_h, x_l], 1), self._w_to_h, None, 1, self.conv_h2h.padding, self.conv_h2h.dilation)
    else:
        y_h = self.conv_h2h(x_h)
        if self.conv_l2h is not None:
            y_h = octconv.add_upsampled(y_h, self.conv_l2h(x_l))
    y_l = None
    if self.conv_h2l is not None:
        p = octconv.octave_pool(x_h)
        if self.conv_l2l is not None:
            x_ll = octconv.octave_pool(x_l) if self.stride == 2 else x_l
            y_l = F.conv2d(torch.cat([p, x_ll], 1), self._w_to_l, None, 1, self.conv_h2h.padding,
                           self.conv_h2h.dilation)
        else:
            y_l = self.conv_h2l(p)
    return y_h, y_l


def fuse_paths(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if isinstance(m, OctaveConv2d):
            if m.conv_l2l is not None:
                m._w_to_l = torch.cat([m.conv_h2l.weight, m.conv_l2l.weight], 1).detach()
            if m.conv_l2h is not None and m.stride == 2:
                m._w_to_h = torch.cat([m.conv_h2h.weight, m.conv_l2h.weight], 1).detach()
            m.forward = _fused_forward.__get__(m)
    return model


# ------------------------------------------------------------------------------------------------ timing

class Variant:
    def __init__(self, label: str, model: torch.nn.Module, channels_last: bool = False, native: bool = False):
        self.label, self.native, self.channels_last = label, native, channels_last
        self.model = model.to(memory_format=CL) if channels_last else model

    def run(self, x: torch.Tensor) -> None:
        if self.channels_last:
            x = x.contiguous(memory_format=CL)
        with native_ops(self.native):
            self.model(x)


def measure(variants: List[Variant], batch: int, reps: int, warmup: int, threads: int,
            clock: Callable[[], float]) -> Dict[str, float]:
    torch.set_num_threads(threads)
    x = torch.randn(batch, 3, 224, 224)
    times: Dict[str, List[float]] = {v.label: [] for v in variants}
    with torch.inference_mode():
        for _ in range(warmup):
            for v in variants:
                v.run(x)
        for _ in range(reps):
            for v in variants:
                t = clock()
                v.run(x)
                times[v.label].append(clock() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def ablation(reps: Dict[int, int]) -> None:
    """Ours vs its two ablations (NCHW), twice each, with more repetitions than the main table."""
    torch.manual_seed(0)
    oct50 = timm.create_model('oct_resnet50').eval()
    variants = [
        Variant('resnet50', timm.create_model('resnet50').eval()),
        Variant('oct_resnet50', oct50),
        Variant('oct_resnet50 fused', fuse_paths(timm.create_model('oct_resnet50').eval())),
        Variant('oct_resnet50 native-ops', oct50, native=True),
    ]
    for batch in (1, 8):
        for _ in range(2):
            r = measure(variants, batch, reps[batch], 2, 1, time.thread_time)
            print(f'batch {batch}, single-threaded CPU ms (ratio to resnet50): '
                  + ', '.join(f'{k} {v:.1f} ({v / r["resnet50"]:.3f})' for k, v in r.items()), flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='few repetitions (smoke test)')
    ap.add_argument('--out', default=str(common.ROOT / 'results' / 'oct_cpu.md'))
    ap.add_argument('--ab', action='store_true',
                    help='only the NCHW ablations, single-threaded CPU time, 40 / 10 repetitions, printed (~2 min)')
    args = ap.parse_args(argv)
    if args.ab:
        ablation(reps={1: 40, 8: 10})
        return
    default_threads = torch.get_num_threads()
    reps = {1: 3, 8: 2} if args.quick else {1: 15, 8: 5}
    warmup = 1 if args.quick else 3

    torch.manual_seed(0)
    r50 = timm.create_model('resnet50').eval()
    oct50 = timm.create_model('oct_resnet50').eval()
    r50_cl = timm.create_model('resnet50').eval()
    oct_cl = timm.create_model('oct_resnet50').eval()
    oct_fused = fuse_paths(timm.create_model('oct_resnet50').eval())
    variants = [
        Variant('resnet50 NCHW', r50),
        Variant('oct_resnet50 NCHW', oct50),
        Variant('oct_resnet50 NCHW native-ops', oct50, native=True),
        Variant('oct_resnet50 NCHW fused', oct_fused),
        Variant('resnet50 channels_last', r50_cl, channels_last=True),
        Variant('oct_resnet50 channels_last', oct_cl, channels_last=True),
    ]
    load_before = os.getloadavg()
    start = time.time()
    results = {}
    for batch in (1, 8):
        results[('wall', batch)] = measure(variants, batch, reps[batch], warmup, default_threads, time.perf_counter)
        results[('cpu', batch)] = measure(variants, batch, reps[batch], warmup, 1, time.thread_time)
        print(batch, results[('wall', batch)], results[('cpu', batch)], flush=True)
    elapsed = time.time() - start
    load_after = os.getloadavg()

    lines = [
        '# OctResNet-50 vs ResNet-50, CPU inference latency',
        '',
        f'Command: `python benchmarks/oct_cpu.py{" --quick" if args.quick else ""}` ({elapsed / 60:.1f} min). '
        f'CPU: {common.cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, '
        f'timm {timm.__version__}, '
        f'Python {platform.python_version()}; wall clock with {default_threads} threads, CPU time single-threaded. '
        f'224x224, float32, eval, `torch.inference_mode()`, medians of {reps[1]} (batch 1) / {reps[8]} (batch 8) '
        f'interleaved repetitions after {warmup} warm-up rounds.',
        '',
        f'Load average (1/5/15 min) before: {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, '
        f'after: {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}. '
        + ('**The machine was shared with other jobs while this ran: wall-clock numbers are inflated and noisy; the '
           'single-threaded CPU-time columns are the more reliable comparison.**' if load_before[0] > 1.5 else
           'The machine was otherwise idle.'),
        '',
        'Ratio = variant / `resnet50` in the same memory format (< 1: faster than ResNet-50).',
        '',
        '| variant | b1 wall ms | ratio | b1 cpu ms | ratio | b8 wall ms | ratio | b8 cpu ms | ratio |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for v in variants:
        base = 'resnet50 channels_last' if v.channels_last else 'resnet50 NCHW'
        cells = []
        for batch in (1, 8):
            for clock in ('wall', 'cpu'):
                r = results[(clock, batch)]
                cells += [f'{r[v.label]:.1f}', f'{r[v.label] / r[base]:.2f}']
        lines.append(f'| {v.label} | ' + ' | '.join(cells) + ' |')
    lines += [
        '',
        'FLOPs (fvcore, 224): resnet50 4.11 GMACs, oct_resnet50 2.38 GMACs (0.58x).',
        '',
        'Variants: `native-ops` = ours with torch\'s NCHW avg_pool2d / upsample_nearest2d kernels (what a direct '
        'port runs); `fused` = ours with the paths that share an output fused into one conv per output frequency '
        'and input resolution (an ablation; not adopted). channels_last converts weights and input.',
        '',
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main(sys.argv[1:])
