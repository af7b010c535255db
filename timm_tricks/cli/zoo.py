"""`timm-tricks zoo`: every registered model of ours plus timm baselines, as CSV, Markdown and plots."""
import argparse
import warnings

from ..profile import run_zoo
from ._args import (
    RUNTIME_HELP,
    add_setup_arguments,
    name_list,
    positive_int,
    print_warning,
    profile_setup,
    runtime_list,
)

DEFAULT_BASELINES = 'resnet50,resnet101,densenet121,resnetblur50,ghostnet_100'


def add_command(subparsers) -> None:
    zoo = subparsers.add_parser(
        'zoo', help='profile every registered model of ours plus timm baselines; CSV, Markdown and plots',
        description='Profiles our models matching --pattern and the --baselines with one setup, in each of '
                    "--runtimes, and writes a CSV with timm's benchmark columns plus ours, a Markdown table, and "
                    'plots of reported top-1 against GMACs and against latency (needs matplotlib: pip install '
                    '"timm-tricks[plots]"; skipped with a warning without it) to --out.')
    zoo.add_argument('--pattern', default='*', help="wildcard over our model names, e.g. 'pyconv*' (default all)")
    zoo.add_argument('--baselines', type=name_list, default=name_list(DEFAULT_BASELINES), metavar='NAME[,NAME...]',
                     help=f"timm models to run alongside, '' for none (default {DEFAULT_BASELINES})")
    zoo.add_argument('--out', required=True, help='directory for the report files')
    add_setup_arguments(zoo)
    zoo.add_argument('--runtimes', type=runtime_list, default=['eager'], metavar='RUNTIME[,RUNTIME...]',
                     help=f'runtimes side by side, each reported as a throughput ratio to the first: {RUNTIME_HELP} '
                          '(default eager)')
    zoo.add_argument('--batch-size', type=positive_int, default=1, help='batch size to time (default 1)')
    zoo.add_argument('--no-progress', action='store_true', help='no progress bar')
    zoo.set_defaults(handler=_zoo)


def _zoo(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():  # restores `showwarning` on exit
        warnings.showwarning = print_warning
        report = run_zoo(
            args.out, profile_setup(args, args.runtimes[0]), runtimes=args.runtimes, pattern=args.pattern,
            baselines=args.baselines, batch_size=args.batch_size, progress=not args.no_progress)
    for path in (report.csv_path, report.markdown_path, *report.plot_paths):
        print(path)
    return 0
