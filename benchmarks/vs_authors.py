"""Ours vs the authors' code and vs timm's resnet50: CPU throughput of each family's representative, side by side.

Per family (PyConv-R50, SPConv-R50, Oct-R50, BlurPool-R50, DCNv2-R50): the authors' model is built from their code,
read from `--authors-root` (never part of this repository), its BatchNorm statistics and affine parameters are
randomised, and its weights are copied into ours through our `checkpoint_filter_fn`. Then, at each batch size, the
outputs of every path of ours are checked against the authors' (max |difference| / max |logit| <= --tolerance,
printed) and every path runs once per repetition in a rotating order (A, B, C, ...; B, C, ..., A; ...) after
warm-up, under `torch.inference_mode()`, fp32, NCHW; medians. The paths:

* authors: their model, eager;
* ours eager: `timm.create_model(name)` with the copied weights;
* ours fused: `timm_tricks.fuse_for_inference(model)` (a copy: every BatchNorm folded, channels_last weights);
* ours compiled: `torch.compile(fused, dynamic=False)` (compiled per batch size before timing; `--no-compile` skips);
* ours onnxruntime: the fused model exported with `timm_tricks.export.export_onnx` (opset 19, dynamic batch), run by
  an onnxruntime CPU session with as many intra-op threads as torch;
* resnet50: timm's `resnet50`, eager, random weights (speed does not depend on them).

DCNv2 has no authors' PyTorch classification code (the paper's is MXNet; detectors use mmcv's CUDA/C++ op). Its
reference is the deformable ResNet-50 as mmdetection builds it on torchvision's op: torchvision's `resnet50` whose
`conv2` in layer2-layer4 is a DCNv2 layer in mmcv's `ModulatedDeformConv2dPack` layout calling
`torchvision.ops.deform_conv2d` (the op our layer called before its tensor-op CPU path; see dcn_fast_cpu.py),
written here; it needs no `--authors-root`.

Get the authors' code (commits this was run with in parentheses) into one folder, e.g. /tmp/authors:
iduta/pyconv -> pyconv (d8b39cf), qiulinzhang/SPConv.pytorch -> SPConv.pytorch (78c734f),
d-li14/octconv.pytorch -> octconv.pytorch (d639428), adobe/antialiased-cnns -> antialiased-cnns (b27a34a; CC BY-NC-SA:
run here, never copied into this project). Then:

    python benchmarks/vs_authors.py --authors-root /tmp/authors                 # batch 1 and 8, 2 threads
    python benchmarks/vs_authors.py --authors-root /tmp/authors --reps 2 --families spconv --no-compile  # smoke test
"""
import os

# torch's OpenMP threads wait passively (yield) instead of spinning, as the onnxruntime session's threads are told
# to: on a machine shared with other jobs, spinning threads with more runnable threads than cores made 2-thread
# torch runs 5-30x slower and meaningless. Set before torch loads its OpenMP runtime; the environment may override.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

# isort: split
import importlib
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional

import timm
import torch
import torchvision
from torch import nn

import timm_tricks  # noqa: F401  (registers the models)
from timm_tricks import fuse_for_inference
from timm_tricks.export import export_onnx
from timm_tricks.models import blurpool_resnet, dcn_resnet, oct_resnet, pyconv_resnet, spconv_resnet

import _common as common

AUTHORS = 'authors'
EAGER, FUSED, COMPILED, ONNXRUNTIME = 'ours eager', 'ours fused', 'ours compiled', 'ours onnxruntime'
RESNET50 = 'resnet50 (timm)'


def import_from(folder: Path, module: str):
    """Import `module` with `folder` (an authors' checkout) first on sys.path."""
    if not folder.is_dir():
        raise SystemExit(f'{folder} does not exist: put the authors\' code under --authors-root (see the docstring)')
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))


def authors_builder(checkout: str, module: str, function: str, **kwargs) -> Callable[[Path], nn.Module]:
    return lambda root: getattr(import_from(root / checkout, module), function)(**kwargs)


class ReferenceDeformConv(nn.Module):
    """DCNv2 in mmcv's `ModulatedDeformConv2dPack` layout on torchvision's op: `conv_offset` predicts
    [offsets of dy, dx per tap | mask logits], mask = sigmoid(logits); replaces a plain conv with its weight."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.weight = conv.weight
        taps = conv.kernel_size[0] * conv.kernel_size[1]
        self.conv_offset = nn.Conv2d(
            conv.in_channels, 3 * taps, conv.kernel_size, conv.stride, conv.padding, conv.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_y, offset_x, logits = self.conv_offset(x).chunk(3, dim=1)
        return torchvision.ops.deform_conv2d(
            x, torch.cat([offset_y, offset_x], 1), self.weight, None, self.stride, self.padding, self.dilation,
            logits.sigmoid())


def reference_dcnv2_resnet50(_authors_root: Path) -> nn.Module:
    """torchvision's resnet50 with DCNv2 in every block's 3x3 of layer2-layer4 (mmdetection's c3-c5)."""
    model = torchvision.models.resnet50()
    for layer in (model.layer2, model.layer3, model.layer4):
        for block in layer:
            block.conv2 = ReferenceDeformConv(block.conv2)
            # offsets of about a pixel, as trained layers have (zero offsets would skip the bilinear sampling's cost)
            nn.init.normal_(block.conv2.conv_offset.weight, std=1e-3)
            nn.init.normal_(block.conv2.conv_offset.bias, std=1.)
    return model


@dataclass(frozen=True)
class Family:
    label: str
    model_name: str  # ours
    checkpoint_filter_fn: Callable  # ours, which turns the authors' state dict into ours
    build_authors: Callable[[Path], nn.Module]
    authors_code: str


FAMILIES = {
    'pyconv': Family(
        'PyConv-R50', 'pyconv_resnet50', pyconv_resnet.checkpoint_filter_fn,
        authors_builder('pyconv', 'models.pyconvresnet', 'pyconvresnet50'), 'iduta/pyconv `models/pyconvresnet.py`'),
    'spconv': Family(
        'SPConv-R50', 'spconv_resnet50', spconv_resnet.checkpoint_filter_fn,
        authors_builder('SPConv.pytorch/code', 'resnet_sp', 'resnet50'),
        'qiulinzhang/SPConv.pytorch `code/resnet_sp.py`'),
    'oct': Family(
        'Oct-R50', 'oct_resnet50', oct_resnet.checkpoint_filter_fn,
        authors_builder('octconv.pytorch', 'oct_resnet', 'oct_resnet50'), 'd-li14/octconv.pytorch `oct_resnet.py`'),
    'blurpool': Family(
        'BlurPool-R50', 'blurpool_resnet50', blurpool_resnet.checkpoint_filter_fn,
        authors_builder('antialiased-cnns', 'antialiased_cnns', 'resnet50', filter_size=4),
        'adobe/antialiased-cnns `antialiased_cnns/resnet.py` (filter_size=4)'),
    'dcnv2': Family(
        'DCNv2-R50', 'dcnv2_resnet50', dcn_resnet.checkpoint_filter_fn, reference_dcnv2_resnet50,
        'torchvision resnet50 + mmcv-layout DCNv2 on `torchvision.ops.deform_conv2d` (this script)'),
}


def build_pair(family: Family, root: Path):
    """The authors' model (eval, randomised norms) and ours with its weights; the warnings their code raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.manual_seed(0)
        authors = family.build_authors(root).eval()
    common.randomize_norms(authors)
    ours = timm.create_model(family.model_name).eval()
    ours.load_state_dict(family.checkpoint_filter_fn(authors.state_dict(), ours))
    return authors, ours, sorted({f'{w.category.__name__}: {w.message}' for w in caught})


@dataclass
class Measured:
    batch: int
    ms: Dict[str, float]  # median per path
    rel_diff: Dict[str, float]  # max |path - authors| / max |authors| on the logits


@dataclass
class FamilyResult:
    family: Family
    measured: List[Measured]
    compile_s: Optional[float]  # first calls of the compiled path (every batch size), None when not compiled
    authors_warnings: List[str]


def onnxruntime_forward(session, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run(None, {'input': x.numpy()})[0])


def bench_family(family: Family, args, resnet50: nn.Module, tmp: Path) -> FamilyResult:
    authors, ours, authors_warnings = build_pair(family, args.authors_root)
    fused = fuse_for_inference(ours)  # the package's inference path: a copy, BN folded, channels_last weights
    paths: Dict[str, Callable] = {AUTHORS: authors, EAGER: ours, FUSED: fused}
    compile_s = None
    if args.compile:
        paths[COMPILED] = torch.compile(fused, dynamic=False)
        compile_s = 0.
    onnx_file = export_onnx(fused, tmp / f'{family.model_name}.onnx', input_size=(3, args.size, args.size),
                            dynamic_batch=True)
    session = common.onnxruntime_session(onnx_file, torch.get_num_threads())
    measured = []
    for batch in args.batch:
        x = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(batch))
        runs = {name: partial(model, x) for name, model in paths.items()}
        runs[ONNXRUNTIME] = partial(onnxruntime_forward, session, x)
        with torch.inference_mode():
            expected = authors(x)
            rel_diff = {}
            for name, run in runs.items():
                start = time.perf_counter()
                rel_diff[name] = common.max_rel_diff(run(), expected)  # the compiled path compiles here, untimed
                if name == COMPILED:
                    compile_s += time.perf_counter() - start
        print(f'{family.label} batch {batch}: max |ours - authors| / max |authors| = '
              + ', '.join(f'{n} {d:.1e}' for n, d in rel_diff.items() if n != AUTHORS), flush=True)
        bad = {n: d for n, d in rel_diff.items() if not d <= args.tolerance}
        if bad:
            raise SystemExit(f'{family.label}: outputs differ from the authors\' beyond {args.tolerance}: {bad}')
        runs[RESNET50] = partial(resnet50, x)
        ms = common.interleaved(runs, args.warmup, args.reps)[0]
        print(f'{family.label} batch {batch}: ' + ', '.join(f'{n} {t:.1f} ms' for n, t in ms.items()), flush=True)
        measured.append(Measured(batch, ms, rel_diff))
    return FamilyResult(family, measured, compile_s, authors_warnings)


def main(argv: Optional[List[str]] = None) -> None:
    parser = common.timing_parser(__doc__, reps=5, warmup=1, out_name='vs_authors_cpu.md', threads=2)
    parser.add_argument('--authors-root', type=Path, default=Path('/tmp/authors'),
                        help='folder holding the authors\' checkouts (see the docstring)')
    parser.add_argument('--families', nargs='+', choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument('--no-compile', dest='compile', action='store_false', help='skip the torch.compile path')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest max |ours - authors| / max |authors| accepted on the logits')
    args = common.parse_timing_args(parser, argv)

    start, load_before, busy = time.time(), common.load_average(), os.getloadavg()[0] >= 1.
    resnet50 = timm.create_model('resnet50').eval()
    with tempfile.TemporaryDirectory(prefix='vs_authors_') as tmp:
        results = [bench_family(FAMILIES[name], args, resnet50, Path(tmp)) for name in args.families]
    write_results(args, results, load_before, common.load_average(), busy, time.time() - start)


def cpu_features() -> str:
    """The vector extensions oneDNN / onnxruntime pick their kernels by, from /proc/cpuinfo."""
    try:
        flags = next(line for line in Path('/proc/cpuinfo').read_text().splitlines() if line.startswith('flags'))
    except (OSError, StopIteration):
        return 'unknown'
    flags = set(flags.split(':', 1)[1].split())
    return ', '.join(f for f in ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile') if f in flags)


def ours_version() -> str:
    try:
        return subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def _ratios(ms: Dict[str, float], name: str):
    """Throughput of `name` relative to the authors' and to resnet50 (> 1: faster)."""
    return ms[AUTHORS] / ms[name], ms[RESNET50] / ms[name]


def write_results(args, results, load_before, load_after, busy: bool, elapsed_s) -> None:
    import onnxruntime
    command = (f'python benchmarks/vs_authors.py --authors-root {args.authors_root} --reps {args.reps} '
               f'--warmup {args.warmup} --threads {args.threads} --batch {" ".join(map(str, args.batch))}'
               + ('' if args.compile else ' --no-compile'))
    rows = []
    for result in results:
        for m in result.measured:
            for name, ms in m.ms.items():
                vs_authors, vs_resnet50 = _ratios(m.ms, name)
                rows.append(dict(
                    family=result.family.label, model=result.family.model_name, batch=m.batch, path=name,
                    median_ms=round(ms, 2), images_per_s=round(m.batch / ms * 1e3, 2),
                    throughput_vs_authors=round(vs_authors, 3), throughput_vs_resnet50=round(vs_resnet50, 3),
                    max_rel_diff_vs_authors='' if name in (AUTHORS, RESNET50) else f'{m.rel_diff[name]:.1e}'))
    common.write_csv(str(Path(args.out).with_suffix('.csv')), rows)

    lines = [
        '# Ours vs the authors\' code and vs timm\'s resnet50 (CPU, fp32)',
        '',
        f'`{command}` ({elapsed_s / 60:.1f} min; input {args.size}x{args.size}, NCHW). CSV: '
        f'`{Path(args.out).with_suffix(".csv").name}`.',
        '',
        f'- Hardware: CPU {common.cpu_name()} ({cpu_features()}), {os.cpu_count()} logical cores, no GPU used; '
        f'{torch.get_num_threads()} threads for torch and for onnxruntime, OMP_WAIT_POLICY='
        f'{os.environ.get("OMP_WAIT_POLICY")} (the script\'s default, so that waiting threads yield the shared cores '
        f'as the onnxruntime session\'s do). torch {torch.__version__}, torchvision {torchvision.__version__}, '
        f'timm {timm.__version__}, onnxruntime {onnxruntime.__version__}; timm_tricks at `{ours_version()}`.',
        f'- Load average (1/5/15 min) before: {load_before}; after: {load_after}. '
        + (common.SHARED_MACHINE_NOTE if busy else
           'The machine was otherwise idle when this started (others may share it): ratios come from the same '
           'repetitions, absolute times may still be disturbed.'),
        '- Method: per family, every path runs once per repetition in a rotating order (authors, ours eager, ours '
        f'fused, ours compiled, ours onnxruntime, resnet50; then shifted by one), {args.warmup} warm-up run(s) each, '
        f'{args.reps} repetitions, medians, `torch.inference_mode()`. Ratios are throughput ratios (> 1: faster '
        'than the reference), from the same repetitions.',
        '- Weights: the authors\' model with randomised BatchNorm statistics and affine parameters, copied into ours '
        'by our `checkpoint_filter_fn`; every path of ours is checked against the authors\' logits at each batch '
        f'(max |difference| / max |logit| <= {args.tolerance:g}; the values are in the table). resnet50: random.',
        '- Paths: fused = `timm_tricks.fuse_for_inference(model)` (a copy: every BatchNorm folded, weights in '
        'channels_last; the input stays NCHW); compiled = '
        '`torch.compile(fused, dynamic=False)`; onnxruntime = the fused model exported by '
        '`timm_tricks.export.export_onnx` (opset 19, dynamic batch), CPUExecutionProvider, threads not spinning.',
        '',
        '| family | batch | path | median ms | images/s | vs authors | vs resnet50 | max rel diff vs authors |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        lines.append(f"| {row['family']} | {row['batch']} | {row['path']} | {row['median_ms']:.1f} | "
                     f"{row['images_per_s']:.1f} | {row['throughput_vs_authors']:.2f}x | "
                     f"{row['throughput_vs_resnet50']:.2f}x | {row['max_rel_diff_vs_authors']} |")
    lines += [
        '', *target_lines(args, results), '', '## The authors\' code', '',
        f'Read from `{args.authors_root}` (checkouts of the commits named in the script\'s docstring; never part of '
        'this repository) and imported as they are: none needed a patch, so the script monkeypatches nothing. '
        'DCNv2 has no authors\' PyTorch classification model (the paper\'s code is MXNet; detectors use mmcv\'s '
        'op); its reference is torchvision\'s resnet50 with mmcv-layout DCNv2 layers on torchvision\'s '
        '`deform_conv2d` kernel, written in the script, with offsets of about a pixel.',
        '']
    for result in results:
        family = result.family
        warned = '; '.join(result.authors_warnings) or 'none'
        compile_s = '' if result.compile_s is None else (
            f'; torch.compile of ours took {result.compile_s:.0f} s (every batch size measured; shorter when '
            'inductor\'s on-disk cache holds the kernels of an earlier run)')
        lines.append(f'- {family.label}: {family.authors_code}; ran unpatched with torch {torch.__version__}; '
                     f'warnings while building it: {warned}{compile_s}.')
    lines.append('')
    common.write_markdown(args.out, lines)


def target_lines(args, results) -> List[str]:
    """The issue's targets (batch 8, or the largest batch measured), each marked met or not."""
    batch = 8 if 8 in args.batch else max(args.batch)
    lines = [f'## Targets (issue 16; batch {batch})', '',
             '| family | fused vs authors (>= 1.2x) | best torch path vs authors (>= 1.3x) | onnxruntime vs ours eager '
             '(>= 1.3x) | eager vs resnet50 (DCNv2 >= 0.6x) |',
             '|---|---|---|---|---|']

    def mark(value: float, target: float) -> str:
        return f"{value:.2f}x {'met' if value >= target else '**not met**'}"

    for result in results:
        ms = next(m.ms for m in result.measured if m.batch == batch)
        best_name = min((n for n in (FUSED, COMPILED) if n in ms), key=ms.get)
        best = mark(_ratios(ms, best_name)[0], 1.3) + f' ({best_name})'
        eager_vs_resnet50 = _ratios(ms, EAGER)[1]
        dcn = mark(eager_vs_resnet50, .6) if result.family.model_name.startswith('dcnv2') else \
            f'{eager_vs_resnet50:.2f}x'
        lines.append(f"| {result.family.label} | {mark(_ratios(ms, FUSED)[0], 1.2)} | {best} | "
                     f"{mark(ms[EAGER] / ms[ONNXRUNTIME], 1.3)} | {dcn} |")
    return lines


if __name__ == '__main__':
    main()
