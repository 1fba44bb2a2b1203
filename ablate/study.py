"""A study's typed schema: its sections and the study they make.

A study names a method, data sets, seeds, fixed hyperparameters (``base``), named ablation
rows (``variants``), an optional search space (:mod:`ablate.search_space`), a scheduler,
resources, tracking and the paper's reference numbers. :mod:`ablate.study_file` reads a file
into a :class:`Study` and checks it against the method's config. Nothing here imports torch
or Ray.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ablate.schema_base import Closed
from ablate.search_space import Search
from trainables.config import MethodConfig, flatten
from trainables.datasets import CATALOGUE, COMMON_OPTIONS, dataset_label, option_problem
from trainables.registry import get_method, registered_methods

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"  # no '/', '.', spaces: Tune and MLflow delimiters
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class DatasetEntry(Closed):
    """A data set of the study: a catalogue name and its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    root: str | None = None
    download: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, value: Any) -> Any:
        # "digits" or {name: stl10, unlabeled: true}: every other key is a data-set option
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "options" not in value:
            fixed = {k: v for k, v in value.items() if k in ("name", "root", "download")}
            options = {k: v for k, v in value.items() if k not in fixed}
            return {**fixed, "options": options} if options else fixed
        return value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in CATALOGUE:
            raise ValueError(f"unknown data set {name!r}; known: {', '.join(CATALOGUE)}")
        return name

    @model_validator(mode="after")
    def _options_known(self) -> DatasetEntry:
        allowed = CATALOGUE[self.name].options | COMMON_OPTIONS
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise ValueError(
                f"data set {self.name!r} has no option(s) {unknown}; allowed: "
                f"{', '.join(sorted(allowed)) or 'none'}"
            )
        for key, value in self.options.items():
            problem = option_problem(key, value)
            if problem is not None:
                raise ValueError(f"data set {self.name!r}: {problem}")
        return self

    @property
    def label(self) -> str:
        """A short name for runs and tables: the data set plus any non-default options."""
        return dataset_label(self.name, self.options)


class Scheduler(Closed):
    """Trial scheduling on the reported ``epoch``: FIFO, or ASHA early stopping.

    ASHA stops trials by ``metric`` (``mode``): a study with ``search`` may give it there.
    """

    type: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    max_t: int | None = Field(None, ge=1)
    metric: str | None = None
    mode: Literal["max", "min"] | None = None


#: Metrics computed from the ground-truth labels: selecting or stopping trials by them is
#: selection by labels, which unsupervised clustering papers may not do unnoticed.
LABEL_METRICS = ("acc", "nmi", "ari", "knn_label_acc")
#: Label-free objectives the loop reports, with their direction.
LABEL_FREE_OBJECTIVES = {"loss": "min", "cluster_entropy": "max", "silhouette": "max"}


def reads_labels(metric: str) -> bool:
    """Whether ``metric`` (or its ``final_``/``best_`` form) is computed from the labels."""
    return metric.removeprefix("final_").removeprefix("best_") in LABEL_METRICS


class Resources(Closed):
    """Per-trial resources (fractional GPUs pack trials onto a card) and concurrency."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)
    workers: int = Field(1, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    gpu_hours_per_trial: float | None = Field(None, gt=0)


class Tracking(Closed):
    """Where MLflow writes: a tracking URI (SQLite file by default) and an experiment."""

    uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        description="$MLFLOW_TRACKING_URI (a cluster's server) or ./mlflow.db when unset.",
    )
    experiment: str | None = None


class RunSettings(Closed):
    """How each trial runs: evaluation cadence, proxy caps, device, data and storage."""

    eval_every: int = Field(1, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1)
    amp: Literal["auto", "off", "bf16"] = "auto"
    device: str = "auto"
    data_root: str | None = None
    checkpoint_every: int = Field(1, ge=1)
    max_retries: int = Field(1, ge=0)
    placement_timeout_s: float | None = Field(
        1800.0,
        gt=0,
        description="Stop the study when trials have waited this long for resources with none "
        "running (an autoscaler that can never provide them); null waits forever.",
    )
    storage: str = Field(
        default_factory=lambda: os.environ.get("ABLATE_STORAGE", "ablate_results"),
        description="Tune's storage; $ABLATE_STORAGE (a cluster's shared file system) or "
        "./ablate_results when unset.",
    )
    share_stages: bool = True
    stage_store: str | None = None
    reuse_trials: bool = Field(
        True,
        description="Replay a finished trial with the same key (method, resolved config, data "
        "set, seed, loop settings, code) instead of training it again.",
    )
    trial_store: str | None = Field(
        None, description="Where finished trials are kept by key; default <run.storage>/trials."
    )
    sync_bn: bool = Field(
        True,
        description="With resources.workers above 1: the backbone's batch norm over the global "
        "batch (exact); false: over each worker's share (as DDP without SyncBN, not exact).",
    )


class Decide(Closed):
    """A declared question: seeds are added look by look until each row's verdict is decided.

    The rule is :mod:`analysis.sequential` (group-sequential repeated confidence intervals,
    Lan-DeMets O'Brien-Fleming spending, Holm over the family). Its options are fixed before
    the first look: choosing them after seeing results would void the error rates.
    """

    metric: Literal["acc", "nmi", "ari"] = Field(
        "acc", description="the primary metric the verdicts are about"
    )
    rows: list[str] | None = Field(
        None,
        description="the confirmatory family, each tested against analysis.control; default "
        "every variant but the control (baseline rows are a separate fixed-n family)",
    )
    delta: float | dict[str, float] = Field(
        0.02,
        description="the smallest effect of interest, absolute in the metric: one for all rows "
        "or one per row; a row whose interval lies inside (-delta, +delta) is 'within'",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise, two-sided")
    looks: list[int] = Field(
        min_length=1,
        description="seeds at each look, increasing; the first is the study's seeds, the last "
        "is the cap",
    )
    max_hours: float | None = Field(
        None,
        gt=0,
        description="cap in device-hours (trial wall time × the CPUs, or GPUs, a trial holds): "
        "no look starts that the study's measured trial times say would pass it",
    )

    @field_validator("looks")
    @classmethod
    def _increasing(cls, looks: list[int]) -> list[int]:
        if looks[0] < 3:
            raise ValueError(f"the first look needs at least 3 seeds; got {looks[0]}")
        if any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
            raise ValueError(f"looks must increase; got {looks}")
        return looks

    @field_validator("delta")
    @classmethod
    def _positive(cls, delta: float | dict[str, float]) -> float | dict[str, float]:
        values = delta.values() if isinstance(delta, dict) else [delta]
        if any(not v > 0 for v in values):
            raise ValueError(f"delta must be above 0; got {delta}")
        return delta

    def delta_of(self, row: str) -> float:
        return self.delta[row] if isinstance(self.delta, dict) else self.delta


class Analysis(Closed):
    """How ``ablate report`` tests the study's rows: paired tests over seeds against a control."""

    control: str | None = Field(
        None, description="the variant every other is tested against; default full, else the first"
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    test: Literal["wilcoxon", "ttest"] = "wilcoxon"
    names: dict[str, str] = Field(
        default_factory=dict,
        description="display names in tables, figures and the HTML page, by data set label, "
        "variant, baseline or metric; default: the published names",
    )
    decide: Decide | None = Field(
        None, description="add seeds until each row is decided (`ablate run`, reports, stats)"
    )


Reference = dict[str, dict[str, dict[str, float | None]]]


def _default_mode(metric: str) -> str:
    return LABEL_FREE_OBJECTIVES.get(metric, "max")


def _one_variant() -> dict[str, dict[str, Any]]:
    return {"default": {}}


def absolute_uri(uri: str) -> str:
    """``sqlite:///relative.db`` anchored at the current directory (Tune may change it)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def train_storage(storage: Path, study: str) -> Path:
    """Where Ray Train keeps the runs of a study's multi-worker trials (beside Tune's)."""
    return storage / f"{study}-train"


#: A baseline row (:data:`analysis.run_schema.BASELINE_ROWS`).
Baseline = Literal["pixels", "untrained"]


class Study(Closed):
    """A study file, validated."""

    name: Name
    description: str = ""
    method: str
    datasets: list[DatasetEntry] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    base: dict[str, Any] = Field(default_factory=dict)
    variants: dict[Name, dict[str, Any]] = Field(default_factory=_one_variant, min_length=1)
    search: Search | None = None
    scheduler: Scheduler = Field(default_factory=Scheduler)
    resources: Resources = Field(default_factory=Resources)
    tracking: Tracking = Field(default_factory=Tracking)
    run: RunSettings = Field(default_factory=RunSettings)
    baselines: list[Baseline] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    reference: Reference = Field(default_factory=dict)

    @field_validator("method")
    @classmethod
    def _registered(cls, method: str) -> str:
        known = list(registered_methods())
        if method not in known:
            hint = difflib.get_close_matches(method, known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(
                f"unknown method {method!r}{extra} Registered methods: {', '.join(known)}"
            )
        return method

    @field_validator("baselines")
    @classmethod
    def _once_each(cls, baselines: list[str]) -> list[str]:
        if len(set(baselines)) != len(baselines):
            raise ValueError(f"baselines repeat: {baselines}")
        return baselines

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    @field_validator("base", "variants", mode="before")
    @classmethod
    def _mappings(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def adaptive(self) -> bool:
        """Whether the study's trials are drawn while it runs (:attr:`Search.adaptive`).

        None is then known before launch, and planning counts its sample budget instead.
        """
        return self.search is not None and self.search.adaptive

    @property
    def objective(self) -> tuple[str, str] | None:
        """(metric, mode) by which trials are picked (optuna, random) or stopped (ASHA).

        None when nothing selects: every trial of a grid runs to the end.
        """
        search, scheduler = self.search, self.scheduler
        if scheduler.type == "asha" and scheduler.metric is not None:
            return scheduler.metric, scheduler.mode or _default_mode(scheduler.metric)
        selects = scheduler.type == "asha" or (search is not None and search.selects)
        if not selects or search is None:
            return None
        return search.metric, search.mode

    @property
    def selection(self) -> str:
        """``labels``, ``label-free`` or ``none``: what picks or stops this study's trials."""
        objective = self.objective
        if objective is None:
            return "none"
        return "labels" if reads_labels(objective[0]) else "label-free"

    def seed_schedule(self) -> list[int]:
        """The seeds in the order looks take them: the study's, then on from its largest."""
        cap = self.analysis.decide.looks[-1] if self.analysis.decide else len(self.seeds)
        start = max(self.seeds) + 1
        return [*self.seeds, *range(start, start + max(cap - len(self.seeds), 0))]

    def method_config_class(self) -> type[MethodConfig]:
        return get_method(self.method).config_class

    def overrides(self, variant: str) -> dict[str, Any]:
        """Flat hyperparameters of a variant: ``base`` then the variant's own overrides."""
        return {**flatten(self.base), **flatten(self.variants[variant])}


# --------------------------------------------------------------------------------------------
# Validation against the method
