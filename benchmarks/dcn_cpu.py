"""CPU latency of DCNv2-ResNet-50 vs timm's resnet50, and where the time goes.

Side by side in one process: every repetition runs each configuration once, in a rotating order (A, B, C, D, then
B, C, D, A, ...), after warm-up, under `torch.inference_mode()`; medians and ratios go to `results/dcn_cpu.md`
(or `--out`). Configurations: timm `resnet50` NCHW and channels_last, `dcnv2_resnet50` NCHW and channels_last, and
`dcnv2_resnet50` under CPU autocast bf16 (torchvision's op runs in float32 there; see
timm_tricks/layers/deform_conv.py).
A torch.profiler pass then reports the share of `torchvision::deform_conv2d` in the DCN model's CPU time.
The MAC column is fvcore's total at 224 from the specs (dcnv2.md §3, flops_latency.md §3), not measured here.

    python benchmarks/dcn_cpu.py                      # batch 1 and 8 at 224, a few minutes on 2 cores
    python benchmarks/dcn_cpu.py --reps 5 --batch 1   # quicker look
"""
import contextlib
import os

import timm
import torch
import torchvision

import timm_tricks  # noqa: F401  (registers the models)

import _common as common

# fvcore total at 1x3x224x224 in GMACs, with the conv-equivalent deform_conv2d handle: specs/dcnv2.md §3
SPEC_GMACS = {'resnet50': 4.1115, 'dcnv2_resnet50': 4.3005}
CONFIGS = {
    # label: (model name, channels_last, autocast dtype)
    'resnet50': ('resnet50', False, None),
    'resnet50 channels_last': ('resnet50', True, None),
    'dcnv2_resnet50': ('dcnv2_resnet50', False, None),
    'dcnv2_resnet50 channels_last': ('dcnv2_resnet50', True, None),
    'dcnv2_resnet50 autocast bf16': ('dcnv2_resnet50', False, torch.bfloat16),
}


def _runner(model, channels_last, amp_dtype, x):
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run():
        ctx = torch.autocast('cpu', dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with ctx:
            return model(x)
    return run


def deform_share(model, size: int) -> float:
    """Fraction of the DCN model's CPU time spent in torchvision::deform_conv2d (batch 1), including the GEMMs
    the kernel calls (inclusive time of the op over the sum of every op's self time)."""
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    deform = sum(e.cpu_time_total for e in events if e.key == 'torchvision::deform_conv2d')
    return deform / total if total else float('nan')


def main():
    parser = common.timing_parser(__doc__, reps=7, warmup=2, out_name='dcn_cpu.md')
    args = common.parse_timing_args(parser)

    torch.manual_seed(0)
    # one instance per model and layout, so the channels_last conversion does not leak into the NCHW runs
    models = {n: timm.create_model(n).eval() for n in ('resnet50', 'dcnv2_resnet50')}
    cl_models = {n: timm.create_model(n).eval() for n in models}
    load_before = common.load_average()
    results = {}
    for batch in args.batch:
        results[batch] = _bench_all(models, cl_models, batch, args)
        print(f'batch {batch}: ' + ', '.join(f'{n} {t:.1f} ms' for n, t in results[batch].items()), flush=True)
    share = deform_share(models['dcnv2_resnet50'], args.size)
    print(f'deform_conv2d share of dcnv2_resnet50 CPU time (batch 1): {share:.1%}', flush=True)
    load_after = common.load_average()
    write_report(args, results, share, load_before, load_after)


def _bench_all(models, cl_models, batch, args):
    x = torch.randn(batch, 3, args.size, args.size)
    runners = {}
    for label, (name, cl, amp) in CONFIGS.items():
        model = cl_models[name] if cl else models[name]
        runners[label] = _runner(model, cl, amp, x)
    return common.interleaved(runners, args.warmup, args.reps)[0]


def write_report(args, results, share, load_before, load_after):
    lines = [
        '# DCNv2-ResNet-50 vs ResNet-50: CPU latency',
        '',
        f'`python benchmarks/dcn_cpu.py --reps {args.reps} --warmup {args.warmup}'
        + (f' --threads {args.threads}' if args.threads else '') + f'` (input {args.size}x{args.size}).',
        '',
        f'- CPU: {common.cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, '
        f'torchvision {torchvision.__version__}, timm {timm.__version__}; {torch.get_num_threads()} torch threads.',
        f'- Load average (1/5/15 min) before: {load_before}; after: {load_after}. **The machine was shared with '
        'other engineers\' jobs while this ran: absolute times are inflated and noisy; the ratios (same run, '
        'interleaved repetitions) are the meaningful part.**',
        '- Method: each repetition runs every configuration once in a rotating order, after warm-up, under '
        '`torch.inference_mode()`; medians. Random weights (latency does not depend on them).',
        '- Threads: with the default 2 threads, runs under heavy load (load average 10-16) were meaningless '
        '(ResNet-50 at batch 1 took 5-8 s and batch 8 was sometimes faster than batch 1): with more runnable '
        'threads than cores, OpenMP synchronisation collapses. Use `--threads 1` on a shared machine and the '
        'default on a quiet one.' if torch.get_num_threads() == 1 else '- Threads: torch default.',
        '- GPU: none was lent to this task, so no GPU numbers. torchvision registers a CUDA autocast kernel for '
        'deform_conv2d (fp32 compute) and a CUDA kernel; measure there with the same script adapted to `cuda`.',
        '',
        '| batch | configuration | median ms | ratio to resnet50 (NCHW) | ratio to resnet50, same layout '
        '| spec GMACs (fvcore, 224) |',
        '|---|---|---|---|---|---|',
    ]
    for batch, res in results.items():
        base = res['resnet50']
        for label, ms in res.items():
            name, cl, _ = CONFIGS[label]
            same = res['resnet50 channels_last' if cl else 'resnet50']
            lines.append(f'| {batch} | {label} | {ms:.1f} | {ms / base:.2f} | {ms / same:.2f} | {SPEC_GMACS[name]} |')
    lines += [
        '',
        f'`torchvision::deform_conv2d` (inclusive of the GEMMs it calls) takes {share:.0%} of dcnv2_resnet50\'s '
        'CPU time at batch 1 (torch.profiler); the 13 deformable layers are 13 of the 53 convolutions (plus their '
        '13 offset predictors) and 35% of the fvcore MACs.',
        '',
    ]
    common.write_markdown(args.out, lines)


if __name__ == '__main__':
    main()
