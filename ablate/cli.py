"""The ``ablate`` command line.

Heavy libraries (torch, Ray, MLflow) load only in the sub-commands that need them, so
``--help`` and ``ablate methods`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ablate.methods_listing import render_methods


def _cmd_methods(args: argparse.Namespace) -> int:
    from trainables.registry import UnknownMethodError

    try:
        sys.stdout.write(render_methods(args.name))
    except UnknownMethodError as error:
        sys.stderr.write(f"ablate methods: {error}\n")
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Ablation studies and hyperparameter searches of contrastive clustering "
        "methods.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    methods = commands.add_parser(
        "methods",
        help="list registered methods with their hyperparameters, defaults and loss switches",
        description="List every registered method: its hyperparameters (dotted keys, as study "
        "files write them), their paper defaults, and its loss-term switches.",
    )
    methods.add_argument("name", nargs="?", help="show only this method")
    methods.set_defaults(handler=_cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
