"""A study file read and checked completely before anything runs.

Every key is checked against the study schema (:mod:`ablate.study`) and the chosen method's
own config class: unknown keys get a did-you-mean, and every error names the file, the key
path and the line. Nothing here imports torch or Ray.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ablate.search_space import search_points
from ablate.study import (
    LABEL_FREE_OBJECTIVES,
    LABEL_METRICS,
    Study,
)
from ablate.yaml_source import KeyPath, StudyFileError, YamlDocument, load_yaml
from analysis import run_schema
from analysis.run_schema import default_control
from trainables.config import MethodConfig, flatten, unflatten
from trainables.datasets import storage_size
from trainables.method import unsplittable_batch
from trainables.registry import get_method


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
    _check_names(doc, study)
    _check_decide(doc, study)
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


def _check_names(doc: YamlDocument, study: Study) -> None:
    """Every display name renames something the study's reports print."""
    known = [
        *(d.label for d in study.datasets),
        *study.variants,
        *study.baselines,
        *run_schema.SCORES,
    ]
    for key, text in study.analysis.names.items():
        if key not in known:
            raise doc.error(
                ("analysis", "names", key),
                f"names no data set, row or metric of this study; allowed: {', '.join(known)}",
            )
        if not text.strip():
            raise doc.error(("analysis", "names", key), "a display name cannot be empty")


def _check_decide(doc: YamlDocument, study: Study) -> None:
    """The declared question fits the study: its rows, its first look, no selection."""
    decide = study.analysis.decide
    if decide is None:
        return
    where: KeyPath = ("analysis", "decide")
    control = study.analysis.control or default_control(list(study.variants))
    others = [v for v in study.variants if v != control]
    for row in decide.rows or []:
        if row not in others:
            raise doc.error(
                (*where, "rows"),
                f"{row!r} is not a variant other than the control {control!r}; "
                f"allowed: {', '.join(others) or 'none (the study has one variant)'}",
            )
    if not (decide.rows or others):
        raise doc.error(where, "the study has one variant: nothing to test against the control")
    rows = decide.rows or others
    if isinstance(decide.delta, dict):
        missing = [r for r in rows if r not in decide.delta]
        extra = [r for r in decide.delta if r not in rows]
        if missing or extra:
            raise doc.error(
                (*where, "delta"),
                f"one delta per row of the family ({', '.join(rows)}): "
                + (f"missing {', '.join(missing)}" if missing else f"no row {', '.join(extra)}"),
            )
    if decide.looks[0] != len(study.seeds):
        raise doc.error(
            (*where, "looks"),
            f"the first look is the study's seeds: {len(study.seeds)} seeds, so looks start at "
            f"{len(study.seeds)}; got {decide.looks[0]}",
        )
    if study.search is not None or study.scheduler.type != "fifo":
        raise doc.error(
            where,
            "a sequential rule compares fixed rows over seeds: it takes no search and no ASHA "
            "scheduler (those select trials by their results)",
        )


def load_study(path: str | Path, force: bool = False) -> Study:
    """Read and validate a study file (``force``: allow more than :data:`MAX_TRIALS`)."""
    return validate_study(load_yaml(path), force)
