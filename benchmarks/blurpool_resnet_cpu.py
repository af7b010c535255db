"""CPU latency of the anti-aliased ResNets next to the plain ones (what the stride-1 3x3 convs and the blurs cost).

Side by side in one process: every repetition runs each model once, in a rotating order (A, B, C, ... then
B, C, ..., A), after warm-up, under `torch.inference_mode()`; the medians, their ratios to the plain ResNet of the
same depth and the fvcore MACs go to `results/blurpool_resnet_cpu.md` (or `--out`).

    python benchmarks/blurpool_resnet_cpu.py                    # batch 1 and 8 at 224, a few minutes on 2 cores
    python benchmarks/blurpool_resnet_cpu.py --reps 5 --batch 1 # quicker look
"""
import warnings

import timm
import torch

import timm_tricks  # noqa: F401  (registers the models)
from timm_tricks.profile._fvcore import FlopCountAnalysis, silence

import _common as common

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
    parser = common.timing_parser(__doc__, reps=9, warmup=2, out_name='blurpool_resnet_cpu.md')
    args = common.parse_timing_args(parser)

    torch.manual_seed(0)
    models = {n: timm.create_model(n).eval() for n in MODELS}
    macs = {n: _macs(m, args.size) for n, m in models.items()}
    load_before = common.load_average()
    results = common.time_models(models, args)

    lines = [
        '# BlurPool-ResNet CPU latency',
        '',
        *common.report_header(args, 'fp32, NCHW', load_before),
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
    common.write_markdown(args.out, lines)


if __name__ == '__main__':
    main()
