"""`timm-tricks profile` (MACs, parameters and latency of one model) and `timm-tricks zoo` (all of ours)."""
import argparse
import sys
import warnings
from typing import List, Tuple

from ..profile import FORMATS, RUNTIMES, ProfileSetup, format_profile, profile_model, run_zoo

DEFAULT_BASELINES = 'resnet50,resnet101,densenet121,resnetblur50,ghostnet_100'
RUNTIME_HELP = ('eager: the model as built; fused: timm.utils.reparameterize_model of a copy; compiled: '
                'torch.compile; onnxruntime: exported to ONNX (opset 19), run by onnxruntime on the CPU '
                '(pip install "timm-tricks[onnx]")')


def add_commands(subparsers) -> None:
    profile = subparsers.add_parser(
        'profile', help='MACs, parameters and latency of one model',
        description='fvcore MACs and activations (batch 1), parameter counts, and the forward latency at each '
                    'batch size. Latency is median / 90th percentile over the timed iterations.')
    profile.add_argument('name', help='model name, ours or timm\'s (arch or arch.tag)')
    _add_setup_arguments(profile)
    profile.add_argument('--runtime', choices=RUNTIMES, default='eager', help=f'{RUNTIME_HELP} (default eager)')
    profile.add_argument('--batch-size', type=_int_list, default=[1], metavar='B[,B...]',
                         help='batch sizes to time, e.g. 1,8,64 (default 1)')
    profile.add_argument('--format', choices=FORMATS, default='table', help='output format (default table)')
    profile.set_defaults(handler=_profile)

    zoo = subparsers.add_parser(
        'zoo', help='profile every registered model of ours plus timm baselines; CSV, Markdown and plots',
        description='Profiles our models matching --pattern and the --baselines with one setup, in each of '
                    "--runtimes, and writes a CSV with timm's benchmark columns plus ours, a Markdown table, and "
                    'plots of reported top-1 against GMACs and against latency (needs matplotlib: pip install '
                    '"timm-tricks[plots]"; skipped with a warning without it) to --out.')
    zoo.add_argument('--pattern', default='*', help="wildcard over our model names, e.g. 'pyconv*' (default all)")
    zoo.add_argument('--baselines', type=_name_list, default=_name_list(DEFAULT_BASELINES), metavar='NAME[,NAME...]',
                     help=f"timm models to run alongside, '' for none (default {DEFAULT_BASELINES})")
    zoo.add_argument('--out', required=True, help='directory for the report files')
    _add_setup_arguments(zoo)
    zoo.add_argument('--runtimes', type=_runtime_list, default=['eager'], metavar='RUNTIME[,RUNTIME...]',
                     help=f'runtimes side by side, each reported as a throughput ratio to the first: {RUNTIME_HELP} '
                          '(default eager)')
    zoo.add_argument('--batch-size', type=_positive_int, default=1, help='batch size to time (default 1)')
    zoo.add_argument('--no-progress', action='store_true', help='no progress bar')
    zoo.set_defaults(handler=_zoo)


def _add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--input-size', type=_input_size, default=(3, 224, 224), metavar='C,H,W',
                        help='input size (default 3,224,224; the fvcore protocol of our specs)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:index] (default cpu)')
    parser.add_argument('--amp', choices=('bf16', 'fp16'), help='time under torch.autocast with this dtype')
    parser.add_argument('--channels-last', action='store_true', help='channels_last model and input')
    parser.add_argument('--warmup', type=_positive_int, default=10, help='untimed iterations (default 10)')
    parser.add_argument('--iters', type=_positive_int, default=40, help='timed iterations (default 40)')
    parser.add_argument('--threads', type=_positive_int,
                        help="intra-op threads of torch and onnxruntime (default: torch's own number)")


def _setup(args: argparse.Namespace, runtime: str) -> ProfileSetup:
    return ProfileSetup(
        input_size=args.input_size, device=args.device, amp=args.amp, channels_last=args.channels_last,
        runtime=runtime, warmup=args.warmup, iters=args.iters, threads=args.threads)


def _profile(args: argparse.Namespace) -> int:
    profile = profile_model(args.name, _setup(args, args.runtime), batch_sizes=args.batch_size)
    print(format_profile(profile, args.format), end='')
    return 0


def _zoo(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():  # restores `showwarning` on exit
        warnings.showwarning = _print_warning
        report = run_zoo(
            args.out, _setup(args, args.runtimes[0]), runtimes=args.runtimes, pattern=args.pattern,
            baselines=args.baselines, batch_size=args.batch_size, progress=not args.no_progress)
    for path in (report.csv_path, report.markdown_path, *report.plot_paths):
        print(path)
    return 0


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as `warning: ...` lines, like errors, without Python's file and line."""
    print(f'warning: {message}', file=sys.stderr)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not a positive integer')
    return value


def _int_list(text: str) -> List[int]:
    return [_positive_int(part) for part in text.split(',')]


def _input_size(text: str) -> Tuple[int, int, int]:
    sizes = _int_list(text)
    if len(sizes) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not C,H,W (e.g. 3,224,224)")
    return tuple(sizes)


def _name_list(text: str) -> List[str]:
    return [name.strip() for name in text.split(',') if name.strip()]


def _runtime_list(text: str) -> List[str]:
    runtimes = _name_list(text)
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of runtimes from {', '.join(RUNTIMES)}")
    return runtimes

