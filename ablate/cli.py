"""The ``ablate`` command line.

Heavy libraries (torch, Ray, MLflow) load only in the sub-commands that need them, so
``--help``, ``ablate methods``, ``ablate validate`` and ``ablate plan`` answer at once. A bad
study file prints one message (file, key path, line, what is allowed) and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ablate.methods_listing import render_methods
from ablate.yaml_source import StudyFileError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.stats import Comparison, PairwiseComparison


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

    study = load_study(args.study, force=args.force)
    print(f"{args.study}: ok ({study.method}, {trial_count(study)} trials)")
    from ablate.reuse_plan import same_configuration_lines

    for line in same_configuration_lines(study):
        print(f"note: {line}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from ablate.planner import describe_plan
    from ablate.study import load_study

    study = load_study(args.study, force=args.force)
    sys.stdout.write(describe_plan(study, verbose=args.full))
    from ablate.reuse_plan import plan_summary

    sys.stdout.write(plan_summary(study))
    _print_cost(study, args)
    if args.pilot:
        from ablate.study import absolute_uri
        from analysis.loading import load_mlflow
        from analysis.paired import default_control, paired_analysis
        from analysis.power import study_power_lines

        uri = absolute_uri(args.tracking_uri or study.tracking.uri)
        pilot_runs = load_mlflow(uri, [args.pilot], best_epoch=False)
        if pilot_runs.empty:
            raise ValueError(f"pilot experiment {args.pilot!r} at {uri} has no runs")
        variants = [str(v) for v in dict.fromkeys(pilot_runs["variant"])]
        pilot = paired_analysis(
            pilot_runs,
            args.metric,
            study.analysis.control or default_control(variants),
            alpha=study.analysis.alpha,
            difference=args.difference,
        )
        print("\n".join(study_power_lines(pilot, len(study.seeds))))
    return 0


def _print_cost(study: Any, args: argparse.Namespace) -> None:
    """Measured cost: measured now with ``--measure``, else what an earlier one cached."""
    from ablate.measure import cost_lines, measure_study

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
            return


def _cmd_status(args: argparse.Namespace) -> int:
    from ablate.status import read_status, status_lines
    from ablate.study import load_study

    study = load_study(args.study, force=True)  # a study that ran was admitted already
    if args.watch is None:
        print("\n".join(status_lines(read_status(study, study_file=args.study))))
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
    from ablate.runner import run_study, summary_table
    from ablate.study import load_study

    study = load_study(args.study, force=args.force)
    outcome = run_study(
        study,
        args.study,
        address=args.address,
        live_progress=sys.stdout.isatty(),
        progress_every_s=args.progress_every,
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
    print(f"{finished} trial{'' if finished == 1 else 's'} finished, {len(outcome.failed)} failed")
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


def _cmd_stats(args: argparse.Namespace) -> int:
    from analysis.aggregate import aggregate
    from analysis.report import describe_comparison, load_sources
    from analysis.stats import compare

    if args.cd_diagram:
        _check_figure_path(args.cd_diagram)  # before any statistics are printed
    from analysis.loading import left_out_lines

    runs = load_sources(args.sources, args.tracking_uri, args.include_stopped)
    for line in left_out_lines(runs):
        print(line)
    metrics = _metric_columns(runs)
    if args.metric not in metrics:
        raise ValueError(
            f"no values of metric {args.metric!r} in {', '.join(args.sources)}; metrics there: "
            f"{', '.join(metrics) or 'none'}"
        )
    if args.paired:
        return _paired_stats(args, runs)
    result: Comparison | PairwiseComparison
    if args.posthoc == "wilcoxon-holm":
        from analysis.paired import block_table
        from analysis.report import describe_pairwise
        from analysis.stats import pairwise_wilcoxon_holm

        result = pairwise_wilcoxon_holm(
            block_table(runs, args.metric), args.metric, alpha=args.alpha
        )
        sys.stdout.write(describe_pairwise(result))
    else:
        scores = aggregate(runs, (args.metric,)).score_table(args.metric)
        result = compare(
            scores, args.metric, alpha=args.alpha, control=args.control, missing=args.missing
        )
        sys.stdout.write(describe_comparison(result))
    if args.cd_diagram:
        from analysis.plots import plot_cd

        plot_cd(result).savefig(args.cd_diagram, bbox_inches="tight")
        print(f"CD diagram: {args.cd_diagram}")
    return 0


def _metric_columns(runs: pd.DataFrame) -> list[str]:
    """The numeric result columns a user may test (not seeds, epochs or parameters)."""
    from pandas.api.types import is_numeric_dtype

    skip = {"seed", "epochs", "early_stopped"}
    return [
        str(c)
        for c in runs.columns
        if c not in skip
        and not str(c).startswith(("param.", "best_"))
        and is_numeric_dtype(runs[c])
        and runs[c].notna().any()
    ]


def _check_figure_path(target: str) -> None:
    from pathlib import Path

    path = Path(target)
    if path.suffix.lower() not in (".pdf", ".png", ".svg"):
        raise ValueError(f"--cd-diagram {target}: give a .pdf, .png or .svg file")
    if not path.parent.is_dir():
        raise ValueError(f"--cd-diagram {target}: folder {path.parent} does not exist")


def _paired_stats(args: argparse.Namespace, runs: pd.DataFrame) -> int:
    from pathlib import Path

    from analysis.paired import describe_paired, paired_analysis, paired_to_json

    if args.control is None:
        raise ValueError("--paired compares against a control: name it with --control")
    result = paired_analysis(
        runs,
        args.metric,
        args.control,
        alpha=args.alpha,
        test=args.test,
        rope=args.rope,
        seed=args.seed,
        power=args.power,
        difference=args.difference,
    )
    sys.stdout.write(describe_paired(result))
    if args.json:
        Path(args.json).write_text(paired_to_json(result), encoding="utf-8")
        print(f"JSON: {args.json}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis.loading import left_out_lines, load_mlflow
    from analysis.report import ReportInput, write_report

    target = args.study_or_experiment
    uri: str | None
    searched: tuple[str, ...]
    settings: dict[str, Any] = {}
    order: dict[str, int] = {}
    if target.endswith(".csv"):
        from analysis.loading import load_published

        runs = load_published(target)
        name, uri, reference, searched = Path(target).stem, None, {}, ()
    elif target.endswith((".yaml", ".yml")):
        from ablate.study import absolute_uri, load_study

        study = load_study(target)
        uri = absolute_uri(args.tracking_uri or study.tracking.uri)
        name, experiment = study.name, study.experiment
        reference = dict(study.reference)
        searched = tuple(study.search.searched_keys()) if study.search else ()
        settings = study.analysis.model_dump()
        rows = [*study.variants, *study.baselines]  # rows as the study lists them
        order = {variant: i for i, variant in enumerate(rows)}
    else:
        uri = args.tracking_uri or "sqlite:///mlflow.db"
        name = experiment = target
        reference, searched = {}, ()
    if not target.endswith(".csv"):
        assert uri is not None
        runs = load_mlflow(uri, [experiment], include_stopped=args.include_stopped)
        if target.endswith((".yaml", ".yml")) and not runs.empty:
            rank = runs["variant"].map(order).fillna(len(order))
            runs = runs.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    if runs.empty:
        raise ValueError(f"{target}: no results to report yet")
    out = Path(args.out or Path("ablate_reports") / name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give the folder the report goes into")
    report = ReportInput(name, runs, reference, searched, uri, **settings)
    for path in write_report(report, out, args.format, ["acc", "nmi", "ari"]):
        print(path)
    for line in left_out_lines(runs):
        print(line)
    return 0


def _add_study_argument(command: argparse.ArgumentParser, force: bool = True) -> None:
    """The study file, and ``--force`` past the trial limit of a likely typo."""
    command.add_argument("study", help="path to a study YAML file")
    if force:
        command.add_argument(
            "--force", action="store_true", help="allow a study of more than 10,000 trials"
        )


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
    _add_study_argument(validate)
    validate.set_defaults(handler=_cmd_validate)

    plan = commands.add_parser(
        "plan",
        help="print a study's trials without running them",
        description="Print the expanded trials (variants x data sets x seeds x search samples) "
        "with their resolved configs, the trial count and, where known, the GPU-hours.",
    )
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
    plan.set_defaults(handler=_cmd_plan)

    run = commands.add_parser(
        "run",
        help="run (or resume) a study on Ray, tracked in MLflow",
        description="Run every trial of a study with Ray Tune; every trial is an MLflow run. "
        "Running it again resumes: finished trials are kept, interrupted or errored ones resume "
        "from their last checkpoint. Exit status: 0 all finished, 1 some failed, 2 bad study file.",
    )
    _add_study_argument(run)
    run.add_argument(
        "--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)"
    )
    run.add_argument(
        "--progress-every",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="when the output is not a terminal (CI, ray job logs): a running trial's epoch "
        "line at most every SECONDS (default 30); on a terminal a live table instead",
    )
    run.set_defaults(handler=_cmd_run)

    status = commands.add_parser(
        "status",
        help="where a study stands: each trial's state, epoch, metrics and the study's ETA",
        description="Read a study's trials from its MLflow experiment (no Ray needed): state, "
        "stage, epoch, last loss and metric, images/s, peak memory, node, the failure reason of "
        "a failed trial, and the study's ETA while its driver runs. Exit status 0.",
    )
    _add_study_argument(status, force=False)
    status.add_argument(
        "--watch",
        type=_positive_seconds,
        nargs="?",
        const=10.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 10) until Ctrl-C",
    )
    status.set_defaults(handler=_cmd_status)

    report = commands.add_parser(
        "report",
        help="write a study's tables, statistics and figures",
        description="Write every table and figure a study supports: results and ablation "
        "tables (check-mark columns for the switches that differ), sweep tables for searched "
        "keys, the reproduction table against the study's reference numbers, Friedman/Nemenyi "
        "statistics with a CD diagram, metric-per-epoch and sweep plots.",
    )
    report.add_argument(
        "study_or_experiment",
        help="a study file, an MLflow experiment name, or a CSV of published numbers",
    )
    report.add_argument("--format", choices=["latex", "md", "csv"], default="latex")
    report.add_argument("--out", help="output folder (default: ablate_reports/<study>)")
    report.add_argument(
        "--tracking-uri", help="MLflow URI (default: the study's, else sqlite:///mlflow.db)"
    )
    report.add_argument(
        "--include-stopped",
        action="store_true",
        help="keep runs the scheduler (ASHA) stopped early: their last epoch is an early one, "
        "not the study's (default: left out of tables and tests, and listed)",
    )
    report.set_defaults(handler=_cmd_report)

    stats = commands.add_parser(
        "stats",
        help="paired tests over seeds against a control, or Friedman/Nemenyi ranks and a CD "
        "diagram",
        description="From MLflow experiments and/or CSV files of published numbers. With "
        "--paired: compare every row with --control on each data set over seeds (mean paired "
        "difference with a bootstrap interval, Wilcoxon and t-test p-values, Holm, a verdict; "
        "--rope adds the Bayesian signed-rank test). Without: rank methods over data sets "
        "(seeds averaged) with the Friedman and Iman-Davenport tests, the Nemenyi critical "
        "difference and, with --control, Bonferroni-Dunn and Holm.",
    )
    stats.add_argument(
        "sources", nargs="+", help="MLflow experiment names and/or results .csv files"
    )
    stats.add_argument("--metric", default="acc", help="metric to rank by (default acc)")
    stats.add_argument("--alpha", type=float, default=0.05)
    stats.add_argument("--control", help="compare every method against this one (Holm)")
    stats.add_argument(
        "--missing",
        choices=["error", "drop-methods", "drop-datasets", "worst"],
        default="error",
        help="policy for missing method x data set cells",
    )
    stats.add_argument("--cd-diagram", metavar="FILE", help="write the CD diagram (.pdf/.png/.svg)")
    stats.add_argument(
        "--posthoc",
        choices=["nemenyi", "wilcoxon-holm"],
        default="nemenyi",
        help="the CD diagram's groups: Nemenyi's CD over data sets (default), or Holm-adjusted "
        "pairwise Wilcoxon tests over (data set, seed) blocks, which keeps power with few "
        "data sets",
    )
    stats.add_argument(
        "--paired",
        action="store_true",
        help="paired comparisons against --control over seeds, per data set",
    )
    stats.add_argument(
        "--test",
        choices=["wilcoxon", "ttest"],
        default="wilcoxon",
        help="with --paired: the test whose Holm-adjusted p gives the verdict (default wilcoxon)",
    )
    stats.add_argument(
        "--rope",
        type=float,
        metavar="R",
        help="with --paired: the Bayesian signed-rank test with a region of practical "
        "equivalence of +-R (baycomp)",
    )
    stats.add_argument("--json", metavar="FILE", help="with --paired: write every number as JSON")
    stats.add_argument(
        "--seed", type=int, default=0, help="with --paired: seed of the bootstrap and baycomp"
    )
    stats.add_argument(
        "--difference",
        type=float,
        help="with --paired: print the seeds a paired difference this large needs (power 0.8)",
    )
    stats.add_argument(
        "--power", type=float, default=0.8, help="with --paired: the power of the seed figures"
    )
    stats.add_argument(
        "--tracking-uri", default="sqlite:///mlflow.db", help="MLflow URI for experiment names"
    )
    stats.add_argument(
        "--include-stopped",
        action="store_true",
        help="keep runs the scheduler (ASHA) stopped early: their last epoch is an early one, "
        "not the study's (default: left out of tables and tests, and listed)",
    )
    stats.set_defaults(handler=_cmd_stats)
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


if __name__ == "__main__":
    raise SystemExit(main())
