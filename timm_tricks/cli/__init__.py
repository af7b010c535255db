"""`timm-tricks` command line: one sub-module per group of commands, each adding its sub-commands."""
import argparse
import sys
from typing import List, Optional

from ..errors import TricksError
from . import download as download_commands
from . import export as export_commands
from . import models as models_commands
from . import profile as profile_commands
from . import weights as weights_commands

COMMAND_GROUPS = (models_commands, download_commands, profile_commands, weights_commands, export_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='timm-tricks', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except TricksError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
