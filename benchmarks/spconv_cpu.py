"""CPU latency of SPConv-ResNet-50: un-fused vs re-parameterised (each merge mode) vs timm's resnet50.

Side by side in one process: every repetition runs each model once, in a rotating order (A, B, C, ... then
B, C, ..., A), after warm-up, under `torch.inference_mode()`; the medians and their ratios go to
`results/spconv_cpu.md` (or `--out`).

    python benchmarks/spconv_cpu.py                       # batch 1 and 8 at 224, ~5-10 minutes on 2 shared cores
    python benchmarks/spconv_cpu.py --reps 5 --batch 1    # quicker look
"""
import time
from functools import partial

import timm
import torch
import torch.fx.experimental.optimization
from torch import nn

import timm_tricks  # noqa: F401  (registers the models)
from timm_tricks.layers import SPConv2d

import _common as common


@torch.no_grad()
def reparameterize(model: nn.Module, merge: str) -> nn.Module:
    """The model's `reparameterize()` with `merge` chosen for every SPConv (`SPConv2d.fuse(norm, merge=...)`)."""
    for block in model.modules():
        if isinstance(getattr(block, 'conv2', None), SPConv2d):
            block.conv2, block.bn2 = block.conv2.fuse(block.bn2, merge=merge), nn.Identity()
    model.reparameterize()
    return model


def build_models(arch: str, merges):
    torch.manual_seed(0)
    base = common.randomize_norms(timm.create_model(arch, zero_init_last=False)).eval()
    models = {f'{arch}': base}
    for merge in merges:
        fused = common.randomize_norms(timm.create_model(arch, zero_init_last=False)).eval()
        fused.load_state_dict(base.state_dict())
        models[f'{arch} fused[{merge}]'] = reparameterize(fused, merge)
    return models


def bench(models, batch: int, size: int, warmup: int, reps: int):
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        refs = {}
        for n in models:  # warm-up, and check that the fused nets compute the same function as the un-fused one
            for _ in range(max(warmup, 1)):
                out = models[n](x)
            arch = n.split(' ')[0]
            if arch not in refs:
                refs[arch] = out
            else:
                err = common.max_rel_diff(out, refs[arch])
                assert err < 1e-4, f'{n} differs from the un-fused {arch}: relative error {err}'
    runs = {n: partial(m, x) for n, m in models.items()}
    return tuple(common.interleaved(runs, 0, reps, clocks=(time.perf_counter, time.process_time)))


def main():
    parser = common.timing_parser(__doc__, reps=15, warmup=3, out_name='spconv_cpu.md')
    parser.add_argument('--arch', nargs='+', default=['spconv_resnet50'],
                        help='SPConv models to compare (e.g. spconv_resnet50 spconv_resnet50_a4)')
    parser.add_argument('--merge', nargs='+', default=['auto', 'pointwise', 'kxk'],
                        help="SPConv2d.fuse(merge=...) modes to compare ('auto' is the default, = 'none')")
    parser.add_argument('--append', action='store_true', help='append to --out instead of overwriting it')
    args = common.parse_timing_args(parser)

    resnet50 = timm.create_model('resnet50').eval()
    models = {'resnet50 (timm)': resnet50}
    # the fair counterpart of a re-parameterised net: timm's resnet50 with its BNs folded too
    models['resnet50 (timm, BN folded)'] = torch.fx.experimental.optimization.fuse(resnet50)
    for arch in args.arch:
        models.update(build_models(arch, args.merge))
    load_before = common.load_average()

    results = {}
    for batch in args.batch:
        results[batch] = bench(models, batch, args.size, args.warmup, args.reps)
        print(f'batch {batch}: ' + ', '.join(
            f'{n} {w:.1f} ms ({c:.1f} ms CPU)' for (n, w), c in zip(results[batch][0].items(),
                                                                   results[batch][1].values())), flush=True)

    lines = [
        '# SPConv-ResNet CPU latency',
        '',
    ] if not args.append else ['', '---', '']
    lines += [
        *common.report_header(args, 'fp32, NCHW', load_before),
        '',
    ]
    for batch, (wall, cpu) in results.items():
        lines += [f'## Batch {batch}', '',
                  '| model | wall ms | vs timm resnet50 | vs un-fused | CPU ms | vs timm resnet50 | vs un-fused |',
                  '|---|---|---|---|---|---|---|']
        for n in wall:
            row = [n]
            for res in (wall, cpu):
                arch = n.split(' ')[0]
                unfused = f'{res[n] / res[arch]:.3f}' if arch in res and n != arch else '–'
                row += [f'{res[n]:.1f}', f"{res[n] / res['resnet50 (timm)']:.3f}", unfused]
            lines.append('| ' + ' | '.join(row) + ' |')
        lines.append('')
    lines += [
        '"CPU ms" is the process CPU time of the forward (`time.process_time`): on a shared machine it is less',
        'disturbed by other jobs than wall time (with 1 thread it is the forward\'s own compute time).',
        'Ratios are time / time of the reference column (< 1 = faster). `fused[m]` = `model.reparameterize()` with',
        '`SPConv2d.fuse(norm, merge=m)` for the SPConvs:',
        "every BatchNorm folded (the block BN after each SPConv through the fusion's sigmoid), with `auto` (the",
        'default, = `none`): the three SPConv convs kept apart, `pointwise`: pwc and the redundant 1x1 as one 1x1',
        'over the whole input (a 2-group conv at alpha 1/2, dense with zero blocks otherwise), `kxk`: pwc folded',
        'into a dense 3x3 with gwc (stride-1 layers).',
        '',
    ]
    common.write_markdown(args.out, lines, append=args.append)


if __name__ == '__main__':
    main()
