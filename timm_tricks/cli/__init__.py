"""`timm-tricks` command line: one sub-module per command."""
import argparse
import sys
from typing import List, Optional

from ..errors import TricksError
from . import convert, download, export, info, profile, push, zoo
from . import list as list_command

# one module per command, named for it, each with `add_command(subparsers)`
COMMANDS = (list_command, info, download, profile, zoo, export, convert, push)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='timm-tricks', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True)
    for command in COMMANDS:
        command.add_command(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except TricksError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
