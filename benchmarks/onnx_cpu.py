"""CPU throughput of each family's representative in onnxruntime vs eager torch, side by side in one process.

Per model: exported once with `timm_tricks.export.export_onnx` (opset 19, static batch), checked against torch
(`check_onnx`, max |difference| / max |logit|), then every repetition runs the eager torch model and the
onnxruntime session once each, alternating, after warm-up (torch under `torch.inference_mode()`); medians.
onnxruntime gets the same number of intra-op threads as torch. Results go to `results/onnx_cpu.md` (or `--out`).

    python benchmarks/onnx_cpu.py                       # batch 8 at 224, 2 threads, every representative
    python benchmarks/onnx_cpu.py --reps 3 --models dcnv2_resnet50 resnet50
"""
import os
import tempfile
from functools import partial
from pathlib import Path

import onnxruntime
import timm
import torch

import timm_tricks  # noqa: F401  (registers the models)
from timm_tricks.export import check_onnx, export_onnx

import _common as common

REPRESENTATIVES = [
    'pyconv_resnet50', 'spconv_resnet50', 'oct_resnet50', 'blurpool_resnet50', 'dcnv2_resnet50', 'ghost_resnet50',
    'cspdensenet121', 'resnet50',
]


def bench_model(name, args, tmp):
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    size = (3, args.size, args.size)
    batch = args.batch[0]
    path = export_onnx(model, Path(tmp) / f'{name}.onnx', input_size=size, batch_size=batch)
    check = check_onnx(model, path, [(batch, *size)], num_threads=torch.get_num_threads())[0]
    session = common.onnxruntime_session(path, torch.get_num_threads())
    x = torch.randn(batch, *size)
    times = common.interleaved({
        'torch': partial(model, x),
        'onnxruntime': partial(session.run, None, {'input': x.numpy()}),
    }, args.warmup, args.reps)[0]
    return times, check.max_rel_diff


def main():
    parser = common.timing_parser(__doc__, reps=5, warmup=1, out_name='onnx_cpu.md', batch=[8], threads=2)
    parser.add_argument('--models', nargs='+', default=REPRESENTATIVES)
    parser.add_argument('--append', action='store_true', help='append to --out (e.g. a run at another thread count)')
    args = common.parse_timing_args(parser)
    load_before = common.load_average()
    results = {}
    with tempfile.TemporaryDirectory(prefix='onnx_cpu_') as tmp:
        for name in args.models:
            results[name] = bench_model(name, args, tmp)
            times, rel = results[name]
            print(f"{name}: torch {times['torch']:.1f} ms, onnxruntime {times['onnxruntime']:.1f} ms, "
                  f'rel diff {rel:.1e}', flush=True)
    write_report(args, results, load_before, common.load_average())


def write_report(args, results, load_before, load_after):
    batch = args.batch[0]
    lines = [
        '# onnxruntime vs eager torch on CPU, per family representative',
        '',
        f'`python benchmarks/onnx_cpu.py --reps {args.reps} --warmup {args.warmup} --threads {args.threads}` '
        f'(batch {batch}, input {args.size}x{args.size}, fp32).',
        '',
        f'- CPU: {common.cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, onnxruntime '
        f'{onnxruntime.__version__}, timm {timm.__version__}; {torch.get_num_threads()} threads for both.',
        f'- Load average (1/5/15 min) before: {load_before}; after: {load_after}. {common.SHARED_MACHINE_NOTE}',
        '- Method: ONNX opset 19 from `timm_tricks.export.export_onnx` (TorchScript exporter; DCN as DeformConv), '
        'onnxruntime CPUExecutionProvider with default graph optimisations; torch eager fp32 NCHW, unfused; each '
        'repetition runs both once, alternating, after warm-up; medians. Random weights.',
        '',
        '| model | torch eager ms | onnxruntime ms | onnxruntime speed-up | max rel diff of logits |',
        '|---|---|---|---|---|',
    ]
    for name, (times, rel) in results.items():
        lines.append(f"| {name} | {times['torch']:.1f} | {times['onnxruntime']:.1f} | "
                     f"{times['torch'] / times['onnxruntime']:.2f}x | {rel:.1e} |")
    lines.append('')
    common.write_markdown(args.out, lines, append=args.append)


if __name__ == '__main__':
    main()
