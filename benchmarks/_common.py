"""Helpers shared by the CPU benchmark scripts (`import _common as common` from the scripts' own directory; the
scripts time the installed package, `pip install -e .`)."""
import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import timm
import torch

ROOT = Path(__file__).resolve().parents[1]

SHARED_MACHINE_NOTE = (
    'The machine was shared with other jobs while this ran, so absolute times are inflated and noisy; the ratios '
    'compare models measured side by side in the same repetitions.')


def cpu_name() -> str:
    """The CPU model as lscpu names it (platform's guess where lscpu is missing)."""
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or 'unknown'


def load_average() -> str:
    return ' / '.join(f'{v:.1f}' for v in os.getloadavg())


def timing_parser(doc: str, reps: int, warmup: int, out_name: str, **defaults: Any) -> argparse.ArgumentParser:
    """A parser described by the first line of `doc`, with --batch, --size, --reps, --warmup, --threads and --out
    (default results/<out_name>); `defaults` replace these defaults."""
    parser = argparse.ArgumentParser(description=doc.split('\n')[0])
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--reps', type=int, default=reps)
    parser.add_argument('--warmup', type=int, default=warmup)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch threads (default: %(default)s; None: torch's own)")
    parser.add_argument('--out', default=str(ROOT / 'results' / out_name))
    parser.set_defaults(**defaults)
    return parser


def parse_timing_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The parsed arguments, with torch's thread count set to --threads (if given)."""
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def interleaved(runs: Dict[str, Callable[[], Any]], warmup: int, reps: int,
                clocks: Sequence[Callable[[], float]] = (time.perf_counter,)) -> List[Dict[str, float]]:
    """Median ms of each run per clock; each repetition runs all once in a rotating order (A, B, C; B, C, A; ...),
    after `warmup` runs of each, under `torch.inference_mode()`."""
    names = list(runs)
    times = [{n: [] for n in names} for _ in clocks]
    with torch.inference_mode():
        for n in names:
            for _ in range(warmup):
                runs[n]()
        for i in range(reps):
            for n in names[i % len(names):] + names[:i % len(names)]:
                starts = [clock() for clock in clocks]
                runs[n]()
                for clock, start, store in zip(clocks, starts, times):
                    store[n].append(clock() - start)
    return [{n: statistics.median(t) * 1e3 for n, t in store.items()} for store in times]


def time_models(models: Dict[str, torch.nn.Module], args: argparse.Namespace) -> Dict[int, Dict[str, float]]:
    """`interleaved` wall-clock medians (ms) of each model on one random batch, for each `--batch` (printed as each
    batch finishes)."""
    results = {}
    for batch in args.batch:
        x = torch.randn(batch, 3, args.size, args.size)
        results[batch] = interleaved({n: partial(m, x) for n, m in models.items()}, args.warmup, args.reps)[0]
        print(f'batch {batch}: ' + ', '.join(f'{n} {t:.1f} ms' for n, t in results[batch].items()), flush=True)
    return results


def report_header(args: argparse.Namespace, setup: str, load_before: str) -> List[str]:
    """The command, machine, timing method and load average (before the timing, now) lines of a report (markdown
    line breaks at their ends)."""
    return [
        f'Command: `python benchmarks/{Path(sys.argv[0]).name} {" ".join(sys.argv[1:])}`'.rstrip() + '  ',
        f'CPU: {cpu_name()}, {os.cpu_count()} logical cores, torch {torch.__version__}, timm {timm.__version__}, '
        f'{torch.get_num_threads()} threads, input {args.size}x{args.size}, median of {args.reps} interleaved '
        f'repetitions after {args.warmup} warm-up runs, `torch.inference_mode()`, {setup}.  ',
        f'Load average (1/5/15 min) before: {load_before}, after: {load_average()}. {SHARED_MACHINE_NOTE}',
    ]


@torch.no_grad()
def randomize_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm statistics and affine parameters (as trained nets have), so that copying and folding them
    is checked by the outputs; returns the model."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for tensor, low, high in ((m.weight, .5, 1.5), (m.bias, -.1, .1), (m.running_mean, -.1, .1),
                                      (m.running_var, .5, 1.5)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return model


def max_rel_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|: the scale-free difference the benchmarks print and check."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def onnxruntime_session(path: Any, threads: int):
    """A CPU onnxruntime session of the ONNX file at `path` with `threads` intra-op threads, its threads told not to
    spin after each run (by default they do, which would steal the cores from torch runs timed in between)."""
    import onnxruntime  # only the scripts that time onnxruntime need it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def write_csv(out: str, rows: List[Dict[str, Any]]) -> None:
    """Write the rows (dicts with the same keys) as CSV to `out`, creating its folder."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f'wrote {out}')


def write_markdown(out: str, lines: List[str], append: bool = False) -> None:
    """Write (or append) the markdown lines to `out`, creating its folder."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = '\n'.join(lines)
    if append and path.exists():
        text = path.read_text() + text
    path.write_text(text)
    print(f'wrote {out}')
