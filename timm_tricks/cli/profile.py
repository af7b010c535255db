"""`timm-tricks profile NAME`: MACs, parameters and latency of one model."""
import argparse

from ..profile import FORMATS, RUNTIMES, format_profile, profile_model
from ._args import RUNTIME_HELP, add_setup_arguments, int_list, profile_setup


def add_command(subparsers) -> None:
    profile = subparsers.add_parser(
        'profile', help='MACs, parameters and latency of one model',
        description='fvcore MACs and activations (batch 1), parameter counts, and the forward latency at each '
                    'batch size. Latency is median / 90th percentile over the timed iterations.')
    profile.add_argument('name', help='model name, ours or timm\'s (arch or arch.tag)')
    add_setup_arguments(profile)
    profile.add_argument('--runtime', choices=RUNTIMES, default='eager', help=f'{RUNTIME_HELP} (default eager)')
    profile.add_argument('--batch-size', type=int_list, default=[1], metavar='B[,B...]',
                         help='batch sizes to time, e.g. 1,8,64 (default 1)')
    profile.add_argument('--format', choices=FORMATS, default='table', help='output format (default table)')
    profile.set_defaults(handler=_profile)


def _profile(args: argparse.Namespace) -> int:
    profile = profile_model(args.name, profile_setup(args, args.runtime), batch_sizes=args.batch_size)
    print(format_profile(profile, args.format), end='')
    return 0
