"""The ``ablate`` command line.

Heavy libraries (torch, Ray, MLflow) load only in the sub-commands that need them, so
``--help``, ``ablate methods``, ``ablate validate`` and ``ablate plan`` answer at once. A bad
study file prints one message (file, key path, line, what is allowed) and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ablate.methods_listing import render_methods
from ablate.yaml_source import StudyFileError


def _cmd_methods(args: argparse.Namespace) -> int:
    from trainables.registry import UnknownMethodError

    try:
        sys.stdout.write(render_methods(args.name))
    except UnknownMethodError as error:
        sys.stderr.write(f"ablate methods: {error}\n")
        return 2
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from ablate.planner import trial_count
    from ablate.study import load_study

    study = load_study(args.study)
    print(f"{args.study}: ok ({study.method}, {trial_count(study)} trials)")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from ablate.planner import describe_plan
    from ablate.study import load_study

    sys.stdout.write(describe_plan(load_study(args.study), verbose=args.full))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ablate.runner import run_study, summary_table
    from ablate.study import load_study

    study = load_study(args.study)
    outcome = run_study(study, args.study, address=args.address)
    if outcome.interrupted:
        print(f"interrupted; run `ablate run {args.study}` again to resume where it stopped")
        return outcome.exit_code
    print()
    print(summary_table(study, outcome.results))
    print()
    from ablate.runner import _absolute_uri

    uri = _absolute_uri(study.tracking.uri)
    print(f"{len(outcome.finished)} trials finished, {len(outcome.failed)} failed")
    for name, error in outcome.failed.items():
        print(f"  FAILED {name}: {error}")
    print(f"results: MLflow experiment {study.experiment!r} at {uri}")
    print(f"  open them with: mlflow ui --backend-store-uri {uri}")
    return outcome.exit_code


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

    validate = commands.add_parser(
        "validate",
        help="check a study file",
        description="Check a study file completely "
        "(schema, method hyperparameters, search space) without running anything.",
    )
    validate.add_argument("study", help="path to a study YAML file")
    validate.set_defaults(handler=_cmd_validate)

    plan = commands.add_parser(
        "plan",
        help="print a study's trials without running them",
        description="Print the expanded trials (variants x data sets x seeds x search samples) "
        "with their resolved configs, the trial count and, where known, the GPU-hours.",
    )
    plan.add_argument("study", help="path to a study YAML file")
    plan.add_argument("--full", action="store_true", help="print every key of each resolved config")
    plan.set_defaults(handler=_cmd_plan)

    run = commands.add_parser(
        "run",
        help="run (or resume) a study on Ray, tracked in MLflow",
        description="Run every trial of a study with Ray Tune; every trial is an MLflow run. "
        "Running it again resumes: finished trials are kept, interrupted or errored ones resume "
        "from their last checkpoint. Exit status: 0 all finished, 1 some failed, 2 bad study file.",
    )
    run.add_argument("study", help="path to a study YAML file")
    run.add_argument(
        "--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)"
    )
    run.set_defaults(handler=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except StudyFileError as error:
        sys.stderr.write(f"ablate {args.command}: {error}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
