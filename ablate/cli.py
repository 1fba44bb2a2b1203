"""The ``ablate`` command line.

Heavy libraries (torch, Ray, MLflow) load only in the sub-commands that need them, so
``--help``, ``ablate methods``, ``ablate validate`` and ``ablate plan`` answer at once. A bad
study file prints one message (file, key path, line, what is allowed) and exits 2. The
commands live in :mod:`ablate.cli_study` (methods, validate, plan, run, status) and
:mod:`ablate.cli_analysis` (report, stats).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ablate import cli_analysis, cli_study
from ablate.yaml_source import StudyFileError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Ablation studies and hyperparameter searches of contrastive clustering "
        "methods.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_study.add_commands(commands)
    cli_analysis.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ablate.driver_lock import StudyLockedError
    from ablate.file_locks import LockUnsupportedError

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (StudyFileError, ValueError, StudyLockedError, LockUnsupportedError) as error:
        # one line, no traceback
        sys.stderr.write(f"ablate {args.command}: {error}\n")
        return 2
    except KeyboardInterrupt:  # a Ctrl-C outside a study's own handling (or a third one)
        sys.stderr.write(f"ablate {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
