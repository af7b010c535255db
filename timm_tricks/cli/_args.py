"""Argument types and options shared by several `timm-tricks` commands."""
import argparse
import sys
from typing import List, Tuple

from ..profile import RUNTIMES, ProfileSetup

RUNTIME_HELP = ('eager: the model as built; fused: timm_tricks.fuse_for_inference of a copy (every BN folded; '
                'in the --channels-last layout or not, as the other runtimes); '
                'compiled: torch.compile; onnxruntime: exported to ONNX (opset 19), run by onnxruntime on the CPU '
                '(pip install "timm-tricks[onnx]")')


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--input-size', type=input_size, default=(3, 224, 224), metavar='C,H,W',
                        help='input size (default 3,224,224; the fvcore protocol of our specs)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:index] (default cpu)')
    parser.add_argument('--amp', choices=('bf16', 'fp16'), help='time under torch.autocast with this dtype')
    parser.add_argument('--channels-last', action='store_true', help='channels_last model and input')
    parser.add_argument('--warmup', type=positive_int, default=10, help='untimed iterations (default 10)')
    parser.add_argument('--iters', type=positive_int, default=40, help='timed iterations (default 40)')
    parser.add_argument('--threads', type=positive_int,
                        help="intra-op threads of torch and onnxruntime (default: torch's own number)")


def profile_setup(args: argparse.Namespace, runtime: str) -> ProfileSetup:
    return ProfileSetup(
        input_size=args.input_size, device=args.device, amp=args.amp, channels_last=args.channels_last,
        runtime=runtime, warmup=args.warmup, iters=args.iters, threads=args.threads)


def print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as `warning: ...` lines, like errors, without Python's file and line."""
    print(f'warning: {message}', file=sys.stderr)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not a positive integer')
    return value


def int_list(text: str) -> List[int]:
    return [positive_int(part) for part in text.split(',')]


def input_size(text: str) -> Tuple[int, int, int]:
    sizes = int_list(text)
    if len(sizes) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not C,H,W (e.g. 3,224,224)")
    return tuple(sizes)


def name_list(text: str) -> List[str]:
    return [name.strip() for name in text.split(',') if name.strip()]


def runtime_list(text: str) -> List[str]:
    runtimes = name_list(text)
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of runtimes from {', '.join(RUNTIMES)}")
    return runtimes

