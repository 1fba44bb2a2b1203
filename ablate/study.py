"""Study files: the typed schema, and validation against the chosen method's config.

A study names a method, data sets, seeds, fixed hyperparameters (``base``), named ablation
rows (``variants``), an optional search space, a scheduler, resources, tracking and the
paper's reference numbers. Every key is checked here, before anything runs: unknown keys get a
did-you-mean, values are validated by the method's own config class, and every error names
the file, the key path and the line. Nothing here imports torch or Ray.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from ablate.schema_base import Closed
from ablate.search_space import Search, search_points
from ablate.yaml_source import KeyPath, StudyFileError, YamlDocument, load_yaml
from trainables.config import MethodConfig, flatten, unflatten
from trainables.datasets import CATALOGUE, COMMON_OPTIONS, option_problem, storage_size
from trainables.method import unsplittable_batch
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
        extra = "".join(f"_{k}{v}" for k, v in sorted(self.options.items()))
        return f"{self.name}{extra}"


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


class Analysis(Closed):
    """How ``ablate report`` tests the study's rows: paired tests over seeds against a control."""

    control: str | None = Field(
        None, description="the variant every other is tested against; default full, else the first"
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    test: Literal["wilcoxon", "ttest"] = "wilcoxon"


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
    baselines: list[Literal["pixels", "untrained"]] = Field(default_factory=list)
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

    def method_config_class(self) -> type[MethodConfig]:
        return get_method(self.method).config_class

    def overrides(self, variant: str) -> dict[str, Any]:
        """Flat hyperparameters of a variant: ``base`` then the variant's own overrides."""
        return {**flatten(self.base), **flatten(self.variants[variant])}


# --------------------------------------------------------------------------------------------
# Validation against the method


def _describe_error(error: ErrorDetails) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error.get("type") in ("extra_forbidden", "missing"):
        return message.lower() if error["type"] == "missing" else "unknown key"
    if "input" in error and error.get("type") not in ("model_type", "dict_type"):
        return f"{message} (got {error['input']!r})"
    return message


def _schema_error(doc: YamlDocument, error: ValidationError) -> StudyFileError:
    first = error.errors()[0]
    path = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = _describe_error(first)
    if first["type"] == "extra_forbidden":
        parent = path[:-1]
        allowed = _allowed_keys(parent)
        hint = difflib.get_close_matches(str(path[-1]), allowed, n=1)
        message = "unknown key" + (f"; did you mean {hint[0]!r}?" if hint else "")
        if allowed:
            message += f" Allowed here: {', '.join(allowed)}"
    return doc.error(path, message)


def _allowed_keys(parent: KeyPath) -> list[str]:
    model: type[BaseModel] = Study
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        models = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


def _key_path(doc: YamlDocument, where: KeyPath, key: str) -> KeyPath:
    """The YAML path of a flat key, whether the file wrote it dotted or nested."""
    dotted_path = (*where, key)
    if dotted_path in doc.lines:
        return dotted_path
    return (*where, *key.split("."))


def _check_keys(doc: YamlDocument, study: Study, flat: dict[str, Any], where: KeyPath) -> None:
    config_class = study.method_config_class()
    known = list(config_class().flat())
    for key in flat:
        if key in known:
            continue
        path = _key_path(doc, where, key)
        if key.startswith("loss."):
            switches = [k.removeprefix("loss.") for k in known if k.startswith("loss.")]
            raise doc.error(
                path,
                f"unknown loss switch {key.removeprefix('loss.')!r} for method {study.method!r}; "
                f"switches: {', '.join(switches)}",
            )
        hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise doc.error(
            path,
            f"unknown hyperparameter {key!r} for method {study.method!r}{extra} "
            f"(`ablate methods {study.method}` lists them)",
        )


def _build(
    doc: YamlDocument, study: Study, layers: list[tuple[KeyPath, dict[str, Any]]]
) -> MethodConfig:
    """The method config from override layers (later wins).

    An error blames the layer that set the offending key, so the message names its line.
    """
    merged: dict[str, Any] = {}
    for _, flat in layers:
        merged.update(flat)
    try:
        return study.method_config_class()(**unflatten(merged))
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        where: KeyPath = layers[-1][0]
        for origin, flat in reversed(layers):
            exact = [k for k in flat if k == key or key.startswith(f"{k}.")]
            below = [k for k in flat if k.startswith(f"{key}.")]
            if exact or below:
                # blame the key itself, or the common prefix (a model-level rule like 'loss')
                where, key = origin, exact[0] if exact else key
                break
        path = _key_path(doc, where, key) if key else where
        raise doc.error(path, _describe_error(first)) from None


def _check_storage_sizes(doc: YamlDocument, study: Study, variant: str, config: Any) -> None:
    """Refuse an image-folder set stored below the method's resolution (it would upsample)."""
    resolution = config.image_size
    for i, entry in enumerate(study.datasets):
        stored = storage_size(entry.name, entry.options, resolution)
        if stored is not None and resolution is not None and stored < resolution:
            raise doc.error(
                ("datasets", i, "size"),
                f"{entry.name} stored at size {stored} would be upsampled to the "
                f"{resolution} px that variant {variant!r} trains at; remove 'size' (the "
                f"images are then decoded at {resolution}) or set size: {resolution}",
            )


def _check_batch_split(doc: YamlDocument, study: Study, config: Any, what: str) -> None:
    """Refuse a batch that ``resources.workers`` cannot share equally (each encodes a share)."""
    workers = study.resources.workers
    if workers == 1:
        return
    problem = unsplittable_batch(get_method(study.method).stages(config), workers)
    if problem is not None:
        raise doc.error(("resources", "workers"), f"{what}: {problem}")


def _check_baselines(doc: YamlDocument, study: Study) -> None:
    """Baseline rows take their own variant names and run beside a fixed set of trials."""
    if not study.baselines:
        return
    taken = sorted(set(study.baselines) & set(study.variants))
    if taken:
        raise doc.error(
            ("variants", taken[0]),
            f"variant name {taken[0]!r} is the name of a baseline row; rename the variant",
        )
    if study.adaptive:
        raise doc.error(
            ("baselines",),
            "optuna adapts its trials one by one; run the baselines in a study of their own",
        )


def _check_objective(doc: YamlDocument, study: Study) -> None:
    """Whatever picks or stops trials names its metric: no silent default of ``acc``."""
    free = ", ".join(f"{m} ({d})" for m, d in LABEL_FREE_OBJECTIVES.items())
    hint = (
        f"a label-free objective ({free}) or, knowingly, one that reads the labels "
        f"({', '.join(LABEL_METRICS)}: the runs are then tagged ablate.selection: labels)"
    )
    search, scheduler = study.search, study.scheduler
    if search is not None and search.selects:
        if "metric" not in search.model_fields_set:
            raise doc.error(
                ("search",),
                f"search.algorithm {search.algorithm} picks trials by search.metric, which has "
                f"no default: set it to {hint}",
            )
    if scheduler.type == "asha" and scheduler.metric is None:
        if search is None or "metric" not in search.model_fields_set:
            raise doc.error(
                ("scheduler", "type"),
                f"ASHA stops trials by a metric, which has no default: set scheduler.metric "
                f"(or search.metric) to {hint}",
            )


def _search_points_per_variant(study: Study) -> dict[str, list[dict[str, Any]]]:
    """Every point a trial of each variant will train (grid, random).

    Optuna draws its points later: each candidate of each key on its own (bounds, choices).
    """
    assert study.search is not None
    if not study.adaptive:
        return {variant: search_points(study.search, variant) for variant in study.variants}
    space = study.search.space
    return {
        variant: [{key: value} for key, domain in space.items() for value in domain.candidates()]
        for variant in study.variants
    }


def _check_search_with_variants(doc: YamlDocument, study: Study) -> None:
    """Refuse a search point that conflicts with a variant's overrides.

    They meet only in a trial: checked here, a conflict stops the study before it starts
    rather than failing its trials.
    """
    if study.search is None:
        return
    config_class = study.method_config_class()
    for variant, points in _search_points_per_variant(study).items():
        overrides = study.overrides(variant)
        for point in points:
            try:
                config = config_class(**unflatten({**overrides, **point}))
            except ValidationError as error:
                own = flatten(study.variants[variant])
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise doc.error(
                    ("search",),
                    f"search point ({shown}) with variant {variant!r} "
                    f"({', '.join(f'{k}={v!r}' for k, v in own.items()) or 'no overrides'}): "
                    f"{_describe_error(error.errors()[0])}",
                ) from None
            shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
            _check_batch_split(doc, study, config, f"search point ({shown}) of variant {variant!r}")


#: Above this many trials a study is refused unless ``--force``: a typo (``num_samples: 1e8``,
#: a grid of many long lists) would otherwise hang planning and flood the cluster.
MAX_TRIALS = 10_000


def planned_trials(study: Study) -> int:
    """The study's trial count, computed without expanding the search."""
    search = study.search
    if search is not None and search.adaptive:
        return search.num_samples * len(study.seeds)
    points = sum(search.points(v) if search else 1 for v in study.variants)
    return (points + len(study.baselines)) * len(study.datasets) * len(study.seeds)


def _check_size(doc: YamlDocument, study: Study, force: bool) -> None:
    count = planned_trials(study)
    if count > MAX_TRIALS and not force:
        where: KeyPath = ("search",) if study.search is not None else ("seeds",)
        raise doc.error(
            where,
            f"{count:,} trials is more than {MAX_TRIALS:,}: a typo? Pass --force if you mean it",
        )


def validate_study(doc: YamlDocument, force: bool = False) -> Study:
    """Validate a parsed study completely; :class:`StudyFileError` on the first problem."""
    if not isinstance(doc.data, dict):
        raise doc.error((), "a study file is a mapping of keys (name, method, datasets, ...)")
    try:
        study = Study.model_validate(doc.data)
    except ValidationError as error:
        raise _schema_error(doc, error) from None
    _check_size(doc, study, force)  # before anything expands the search
    base = flatten(study.base)
    _check_keys(doc, study, base, ("base",))
    for variant, overrides in study.variants.items():
        flat = flatten(overrides)
        _check_keys(doc, study, flat, ("variants", variant))
        config = _build(doc, study, [(("base",), base), (("variants", variant), flat)])
        _check_storage_sizes(doc, study, variant, config)
        _check_batch_split(doc, study, config, f"variant {variant!r}")
    if study.search is not None:
        space = study.search.space
        _check_keys(doc, study, dict.fromkeys(space), ("search", "space"))
        for variant, own in study.search.variant_space.items():
            where: KeyPath = ("search", "variant_space", variant)
            if variant not in study.variants:
                raise doc.error(where, f"no such variant; variants: {', '.join(study.variants)}")
            _check_keys(doc, study, dict.fromkeys(own), where)
            for key, domain in own.items():
                for value in domain.candidates():
                    config = _build(doc, study, [(("base",), base), (where, {key: value})])
                    _check_batch_split(doc, study, config, f"{key}={value!r}")
        if study.adaptive and (len(study.variants) > 1 or len(study.datasets) > 1):
            raise doc.error(
                ("search", "algorithm"),
                "optuna searches one variant on one data set at a time (each result steers the "
                "next sample); split the study, or use algorithm: random",
            )
        for key, domain in space.items():
            for value in domain.candidates():
                layer: tuple[KeyPath, dict[str, Any]] = (("search", "space"), {key: value})
                _build(doc, study, [(("base",), base), layer])
    _check_search_with_variants(doc, study)
    _check_objective(doc, study)
    _check_baselines(doc, study)
    control = study.analysis.control
    if control is not None and control not in study.variants:
        raise doc.error(
            ("analysis", "control"), f"no such variant; variants: {', '.join(study.variants)}"
        )
    for variant, per_dataset in study.reference.items():
        if variant not in study.variants:
            raise doc.error(
                ("reference", variant), f"no such variant; variants: {', '.join(study.variants)}"
            )
        labels = {d.label for d in study.datasets} | {d.name for d in study.datasets}
        for dataset in per_dataset:
            if dataset not in labels:
                raise doc.error(
                    ("reference", variant, dataset),
                    f"no such data set in this study; data sets: {', '.join(sorted(labels))}",
                )
    return study


def load_study(path: str | Path, force: bool = False) -> Study:
    """Read and validate a study file (``force``: allow more than :data:`MAX_TRIALS`)."""
    return validate_study(load_yaml(path), force)
