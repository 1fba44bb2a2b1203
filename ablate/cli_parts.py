"""What every ``ablate`` command's parser is made of: a sub-parser with its handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def new_command(
    commands: Any, name: str, handler: Handler, texts: tuple[str, str]
) -> argparse.ArgumentParser:
    """A sub-command of ``ablate`` that runs ``handler(args)`` for its exit status.

    ``texts``: its one-line help (``ablate --help``) and its description (``ablate NAME -h``).
    """
    help_line, description = texts
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_line, description=description
    )
    parser.set_defaults(handler=handler)
    return parser
