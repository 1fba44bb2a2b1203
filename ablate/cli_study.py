"""The ``ablate`` commands that read a study file and run or inspect it.

``methods``, ``validate``, ``plan``, ``run`` and ``status``: one handler and one parser
builder each. Heavy libraries load inside the handlers that need them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ablate.cli_parts import new_command
from ablate.methods_listing import render_methods
from ablate.wording import count

#: Each command's one-line help (``ablate --help``) and its description (``ablate NAME --help``).
TEXTS: dict[str, tuple[str, str]] = {
    "methods": (
        "list registered methods with their hyperparameters, defaults and loss switches",
        "List every registered method: its hyperparameters (dotted keys, as study "
        "files write them), their paper defaults, and its loss-term switches.",
    ),
    "validate": (
        "check a study file",
        "Check a study file completely "
        "(schema, method hyperparameters, search space) without running anything.",
    ),
    "plan": (
        "print a study's trials without running them",
        "Print the expanded trials (variants x data sets x seeds x search samples) "
        "with their resolved configs, the trial count and, where known, the GPU-hours.",
    ),
    "run": (
        "run (or resume) a study on Ray, tracked in MLflow",
        "Run every trial of a study with Ray Tune; every trial is an MLflow run. "
        "Running it again resumes: finished trials are kept, interrupted or errored ones resume "
        "from their last checkpoint. Exit status: 0 all finished, 1 some failed, 2 bad study file.",
    ),
    "status": (
        "where a study stands: each trial's state, epoch, metrics and the study's ETA",
        "Read a study's trials from its MLflow experiment (no Ray needed): state, "
        "stage, epoch, last loss and metric, images/s, peak memory, node, the failure reason of "
        "a failed trial, and the study's ETA while its driver runs. Exit status 0.",
    ),
}


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
    from ablate.study_file import load_study

    study = load_study(args.study, force=args.force)
    print(f"{args.study}: ok ({study.method}, {count(trial_count(study), 'trial')})")
    from ablate.reuse_plan import same_configuration_lines

    for line in same_configuration_lines(study):
        print(f"note: {line}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from ablate.planner import describe_plan
    from ablate.reuse_plan import plan_summary
    from ablate.study_file import load_study

    study = load_study(args.study, force=args.force)
    sys.stdout.write(describe_plan(study, verbose=args.full))
    sys.stdout.write(plan_summary(study))
    hours = _print_cost(study, args)
    from ablate.looks import look_plan_lines

    for line in look_plan_lines(study, hours):
        print(line)
    if args.pilot:
        _print_pilot_power(study, args, hours)
    return 0


def _print_pilot_power(study: Any, args: argparse.Namespace, hours: float | None = None) -> None:
    """What the study's seeds can detect, from the seed spread of a pilot experiment."""
    from ablate.study import absolute_uri
    from analysis.loading import load_mlflow
    from analysis.paired import PairedSettings, paired_analysis
    from analysis.power import study_power_lines
    from analysis.run_schema import default_control

    uri = absolute_uri(args.tracking_uri or study.tracking.uri)
    pilot_runs = load_mlflow(uri, [args.pilot], best_epoch=False)
    if pilot_runs.empty:
        raise ValueError(f"pilot experiment {args.pilot!r} at {uri} has no runs")
    variants = [str(v) for v in dict.fromkeys(pilot_runs["variant"])]
    control = study.analysis.control or default_control(variants)
    settings = PairedSettings(alpha=study.analysis.alpha, difference=args.difference)
    pilot = paired_analysis(pilot_runs, args.metric, control, settings)
    print("\n".join(study_power_lines(pilot, len(study.seeds))))
    from ablate.looks import expected_lines, question_of

    question = question_of(study)
    if question is not None and args.metric == question.metric:
        spreads: dict[str, dict[str, float]] = {}
        for row in pilot.rows:
            if row.sd_difference is not None and row.n >= 3:
                spreads.setdefault(row.dataset, {})[row.other.split(":", 1)[-1]] = row.sd_difference
        for line in expected_lines(question, spreads, hours):
            print(line)


def _print_cost(study: Any, args: argparse.Namespace) -> float | None:
    """Measured cost: measured now with ``--measure``, else what an earlier one cached.

    Returns the mean device-hours of a measured trial (None: nothing measured).
    """
    from ablate.measure import cost_lines, mean_trial_hours, measure_study

    device = args.device or study.run.device
    if args.measure:
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        print(f"measuring each distinct configuration on {device} ...", flush=True)
        measure_study(study, device)
    # without --measure, no torch import (plan stays fast): what was measured, GPU first
    for candidate in ("cuda", "cpu") if device == "auto" else (device,):
        lines = cost_lines(study, candidate, args.devices)
        if lines:
            print("\n".join(lines))
            return mean_trial_hours(study, candidate)
    return None


def _cmd_status(args: argparse.Namespace) -> int:
    from ablate.status import read_status, status_lines
    from ablate.study_file import load_study

    study = load_study(args.study, force=True)  # a study that ran was admitted already
    if args.watch is None:
        from ablate.looks import state_lines

        lines = status_lines(read_status(study, study_file=args.study))
        print("\n".join([*lines, *state_lines(study)]))
        return 0
    return _watch_status(study, args.watch, args.study)


def _watch_status(study: Any, every_s: float, study_file: str) -> int:
    """Redraw the status every ``every_s`` seconds until Ctrl-C (in place on a terminal)."""
    import time

    from ablate.status import read_status, status_lines

    live = None
    if sys.stdout.isatty():
        from rich.live import Live
        from rich.text import Text

        live = Live(Text(""), auto_refresh=False)
        live.start()
    try:
        while True:
            text = "\n".join(status_lines(read_status(study, study_file=study_file)))
            if live is not None:
                live.update(Text(text), refresh=True)
            else:
                print(text + "\n", flush=True)
            time.sleep(every_s)
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()


def _positive_seconds(text: str) -> float:
    """``--progress-every``'s value: a positive number of seconds, or argparse's one-line error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from ablate.closing_table import summary_table
    from ablate.progress_callback import Display
    from ablate.runner import run_study
    from ablate.study_file import load_study

    study = load_study(args.study, force=args.force)
    display = Display(live=sys.stdout.isatty(), every_s=args.progress_every)
    if study.analysis.decide is not None:
        from ablate.look_runner import run_looks

        outcome, _ = run_looks(study, args.study, args.address, display, args.restart)
    else:
        outcome = run_study(
            study, args.study, address=args.address, display=display, restart=args.restart
        )
    if outcome.interrupted:
        print(f"interrupted; run `ablate run {args.study}` again to resume where it stopped")
        if outcome.tracking_pending:
            print(f"({outcome.tracking_pending} MLflow record(s) wait in {outcome.backlog})")
        return outcome.exit_code
    print()
    print(summary_table(study, outcome.results))
    print()
    from ablate.study import absolute_uri

    uri = absolute_uri(study.tracking.uri)
    finished = len(outcome.finished)
    print(f"{count(finished, 'trial')} finished, {len(outcome.failed)} failed")
    for name, error in outcome.failed.items():
        print(f"  FAILED {name}: {error}")
    print(f"results: MLflow experiment {study.experiment!r} at {uri}")
    print(f"  open them with: mlflow ui --backend-store-uri {uri}")
    if outcome.tracking_pending:
        print(
            f"MLflow at {uri} did not take {outcome.tracking_pending} record(s); they are kept "
            f"in {outcome.backlog} and written at the next `ablate run {args.study}`"
        )
    return outcome.exit_code


def _add_study_argument(command: argparse.ArgumentParser, force: bool = True) -> None:
    """The study file, and ``--force`` past the trial limit of a likely typo."""
    command.add_argument("study", help="path to a study YAML file")
    if force:
        command.add_argument(
            "--force", action="store_true", help="allow a study of more than 10,000 trials"
        )


def _add_methods(commands: Any) -> None:
    """``ablate methods [NAME]``."""
    methods = new_command(commands, "methods", _cmd_methods, TEXTS["methods"])
    methods.add_argument("name", nargs="?", help="show only this method")


def _add_validate(commands: Any) -> None:
    """``ablate validate STUDY``."""
    validate = new_command(commands, "validate", _cmd_validate, TEXTS["validate"])
    _add_study_argument(validate)


def _add_plan(commands: Any) -> None:
    """``ablate plan STUDY``: the trials, what is done already, the cost."""
    plan = new_command(commands, "plan", _cmd_plan, TEXTS["plan"])
    _add_study_argument(plan)
    plan.add_argument("--full", action="store_true", help="print every key of each resolved config")
    plan.add_argument(
        "--pilot",
        metavar="EXPERIMENT",
        help="an MLflow experiment of earlier runs of these rows: print the smallest paired "
        "difference the study's seeds can detect, from the pilot's seed spread",
    )
    plan.add_argument("--metric", default="acc", help="with --pilot: the metric (default acc)")
    plan.add_argument(
        "--difference", type=float, help="with --pilot: also print the seeds this difference needs"
    )
    plan.add_argument(
        "--tracking-uri", help="with --pilot: MLflow URI (default: the study's tracking.uri)"
    )
    plan.add_argument(
        "--measure",
        action="store_true",
        help="time a few steps of every stage and one evaluation of each distinct configuration "
        "(variants × data sets × search points, not seeds) on this machine, and print seconds "
        "per epoch, hours per trial and the study's device-hours; cached for later plans",
    )
    plan.add_argument(
        "--device", help="with --measure: the device to time on (default: the study's run.device)"
    )
    plan.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="also print the wall-clock on a cluster of N devices (GPUs; CPU trials: slots)",
    )


def _add_run(commands: Any) -> None:
    """``ablate run STUDY``."""
    run = new_command(commands, "run", _cmd_run, TEXTS["run"])
    _add_study_argument(run)
    run.add_argument(
        "--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)"
    )
    run.add_argument(
        "--restart",
        action="store_true",
        help="start the study over as its file now says, instead of resuming it: the earlier "
        "run's MLflow runs are deleted (restorable) and its saved state moved aside; trials "
        "the trial store holds replay, new or changed ones train",
    )
    run.add_argument(
        "--progress-every",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="when the output is not a terminal (CI, ray job logs): a running trial's epoch "
        "line at most every SECONDS (default 30); on a terminal a live table instead",
    )


def _add_status(commands: Any) -> None:
    """``ablate status STUDY``."""
    status = new_command(commands, "status", _cmd_status, TEXTS["status"])
    _add_study_argument(status, force=False)
    status.add_argument(
        "--watch",
        type=_positive_seconds,
        nargs="?",
        const=10.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 10) until Ctrl-C",
    )


def add_commands(commands: Any) -> None:
    """Add the study commands to the ``ablate`` parser's sub-commands."""
    for add in (_add_methods, _add_validate, _add_plan, _add_run, _add_status):
        add(commands)
