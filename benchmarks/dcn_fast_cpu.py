"""CPU throughput of DCNv2-ResNet-50 with the tensor-op deformable conv vs torchvision's kernel vs timm's resnet50.

Side by side in one process (every repetition runs each configuration once, in a rotating order, after warm-up,
under `torch.inference_mode()`), eager fp32, NCHW: timm `resnet50`, `dcnv2_resnet50` as shipped (on CPU its
deformable layers run `timm_tricks.layers.deform_conv_cpu.deform_conv2d_cpu`) and the same model with the layers
sent to `torch.ops.torchvision.deform_conv2d` (the previous path; this script swaps the function the layers call).
Then the three R-50 deformable-layer shapes alone (stride 1, dg 1): ours, torchvision's, and a plain 3x3 conv.
Medians and ratios go to `results/dcn_fast_cpu.md` (or `--out`).

    python benchmarks/dcn_fast_cpu.py                  # batch 8 at 224, 2 threads
    python benchmarks/dcn_fast_cpu.py --reps 3         # quicker look
"""
import contextlib
import os
import time
from functools import partial

import timm
import torch
import torch.nn.functional as F
import torchvision

import timm_tricks  # noqa: F401  (registers the models)
from timm_tricks.layers import deform_conv
from timm_tricks.layers.deform_conv_cpu import deform_conv2d_cpu

import _common as common

# channels and output size of the deformable conv2 of R-50's layer2 / layer3 / layer4 at 224 (stride-1 blocks)
LAYER_SHAPES = {'layer2': (128, 28), 'layer3': (256, 14), 'layer4': (512, 7)}


def _torchvision_kernel(input, weight, offset, mask, bias, stride, padding, dilation, groups, offset_groups):
    if bias is None:
        bias = input.new_zeros(weight.shape[0])
    return torch.ops.torchvision.deform_conv2d(
        input, weight, offset, mask, bias, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
        groups, offset_groups, True)


@contextlib.contextmanager
def torchvision_kernel():
    """The layers' CPU path swapped for torchvision's kernel while the block runs."""
    deform_conv.deform_conv2d_cpu = _torchvision_kernel
    try:
        yield
    finally:
        deform_conv.deform_conv2d_cpu = deform_conv2d_cpu


def _with_torchvision_kernel(fn, *args):
    with torchvision_kernel():
        return fn(*args)


def bench_models(args):
    torch.manual_seed(0)
    resnet50 = timm.create_model('resnet50').eval()
    dcn = timm.create_model('dcnv2_resnet50').eval()
    for m in dcn.modules():  # speed does not depend on the values, the equality check below does
        if isinstance(m, torch.nn.BatchNorm2d):  # timm zero-inits each block's last BN: the DCN would not count
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
        elif isinstance(m, deform_conv.ModulatedDeformConv2d):  # offsets of about a pixel, as trained layers have
            torch.nn.init.normal_(m.conv_offset.weight, std=1e-3)
            torch.nn.init.normal_(m.conv_offset.bias, std=1.0)
    x = torch.randn(args.batch[0], 3, args.size, args.size)
    with torch.inference_mode():
        ours = dcn(x)
        with torchvision_kernel():
            reference = dcn(x)
    rel = common.max_rel_diff(ours, reference)
    runs = {
        'resnet50 (timm)': partial(resnet50, x),
        'dcnv2_resnet50, tensor-op DCN (ours)': partial(dcn, x),
        'dcnv2_resnet50, torchvision kernel': partial(_with_torchvision_kernel, dcn, x),
    }
    wall, cpu = common.interleaved(runs, args.warmup, args.reps, clocks=(time.perf_counter, time.process_time))
    return wall, cpu, rel


def bench_layers(args):
    results = {}
    for name, (channels, size) in LAYER_SHAPES.items():
        n = args.batch[0]
        x = torch.randn(n, channels, size, size)
        weight = torch.randn(channels, channels, 3, 3)
        offset = torch.randn(n, 18, size, size)
        mask = torch.rand(n, 9, size, size)
        op_args = (x, weight, offset, mask, None, (1, 1), (1, 1), (1, 1), 1, 1)
        results[name] = common.interleaved({
            'ours': partial(deform_conv2d_cpu, *op_args),
            'torchvision': partial(_torchvision_kernel, *op_args),
            'conv 3x3': partial(F.conv2d, x, weight, padding=1),
        }, args.warmup, args.reps, clocks=(time.process_time,))[0]
    return results


def main():
    parser = common.timing_parser(__doc__, reps=5, warmup=2, out_name='dcn_fast_cpu.md', batch=[8], threads=2)
    parser.add_argument('--append', action='store_true', help='append to --out (e.g. a run at another thread count)')
    args = common.parse_timing_args(parser)
    load_before = common.load_average()
    models, models_cpu, rel = bench_models(args)
    print(', '.join(f'{n} {t:.1f} ms' for n, t in models.items()), flush=True)
    layers = bench_layers(args)
    print(layers, flush=True)
    write_report(args, models, models_cpu, rel, layers, load_before, common.load_average())


def write_report(args, models, models_cpu, rel, layers, load_before, load_after):
    batch = args.batch[0]
    base, base_cpu = models['resnet50 (timm)'], models_cpu['resnet50 (timm)']
    lines = [
        '# DCNv2-ResNet-50 with the tensor-op deformable conv: CPU throughput',
        '',
        f'`python benchmarks/dcn_fast_cpu.py --reps {args.reps} --warmup {args.warmup} --threads {args.threads}` '
        f'(batch {batch}, input {args.size}x{args.size}, fp32, eager, NCHW).',
        '',
        f'- CPU: {common.cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, '
        f'torchvision {torchvision.__version__}, timm {timm.__version__}; {torch.get_num_threads()} torch threads.',
        f'- Load average (1/5/15 min) before: {load_before}; after: {load_after}. {common.SHARED_MACHINE_NOTE}',
        '- Method: each repetition runs every configuration once in a rotating order, after warm-up, under '
        '`torch.inference_mode()`; medians. Random weights; DCN offsets of about a pixel.',
        f'- The two DCN paths give the same logits: max |difference| / max |logit| = {rel:.1e}.',
        '- "CPU ms" is the process CPU time of the forward (`time.process_time`, all threads): with one thread it '
        'barely depends on other jobs; with more it includes OpenMP spin-waiting.',
        '',
        '| configuration | median ms | images / s | throughput relative to resnet50 | median CPU ms | '
        'relative to resnet50 by CPU time |',
        '|---|---|---|---|---|---|',
    ]
    for label, ms in models.items():
        cpu_ms = models_cpu[label]
        lines.append(f'| {label} | {ms:.1f} | {batch / ms * 1e3:.1f} | {base / ms:.2f}x | {cpu_ms:.1f} | '
                     f'{base_cpu / cpu_ms:.2f}x |')
    lines += [
        '',
        f'One deformable layer (R-50 shapes, batch {batch}, stride 1, deform_groups 1, random offsets), median CPU '
        'ms:',
        '',
        '| layer | channels, output size | ours | torchvision | plain 3x3 conv | ours / conv | '
        'torchvision / ours |',
        '|---|---|---|---|---|---|---|',
    ]
    for name, res in layers.items():
        channels, size = LAYER_SHAPES[name]
        lines.append(
            f"| {name} | {channels}, {size}x{size} | {res['ours']:.1f} | {res['torchvision']:.1f} | "
            f"{res['conv 3x3']:.1f} | {res['ours'] / res['conv 3x3']:.2f} | "
            f"{res['torchvision'] / res['ours']:.2f}x |")
    lines.append('')
    common.write_markdown(args.out, lines, append=args.append)


if __name__ == '__main__':
    main()
