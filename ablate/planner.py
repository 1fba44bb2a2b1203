"""From a validated study to trials: variants × data sets × seeds × search samples.

The planner alone turns a study into what Ray Tune runs. Grid and random searches are
expanded here, with random samples drawn from the study's seed, so ``ablate plan`` shows the
exact trials, every seed of a sample is a true replicate (same hyperparameters), and a
resumed study expands to the same list. Optuna is adaptive: the planner gives its trial count
and a define-by-run space instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ablate.search_space import Domain, search_points
from ablate.study import DatasetEntry, Study
from ablate.study_file import planned_trials
from ablate.wording import count
from ablate.yaml_source import StudyFileError
from trainables.config import MethodConfig, flatten, unflatten
from trainables.registry import get_method


class TrialConfigError(ValueError):
    """A trial's configuration that the method's config class rejects.

    A sampled point or a variant's overrides: that trial fails with this one-line reason, the
    others run.
    """


@dataclass(frozen=True)
class TrialSpec:
    """One trial: everything needed to train it, and its deterministic name."""

    study: str
    method: str
    variant: str
    dataset: dict[str, Any]
    seed: int
    params: dict[str, Any] = field(default_factory=dict)  # flat hyperparameter overrides
    sample: int | None = None  # search sample index; None without a search

    @property
    def dataset_entry(self) -> DatasetEntry:
        return DatasetEntry.model_validate(self.dataset)

    @property
    def key(self) -> str:
        """``<variant>-<dataset>-s<seed>[-n<sample>]``: unique within a study, stable."""
        tail = "" if self.sample is None else f"-n{self.sample}"
        return f"{self.variant}-{self.dataset_entry.label}-s{self.seed}{tail}"

    def method_config(self) -> MethodConfig:
        """The resolved, validated method config of this trial (:class:`TrialConfigError`)."""
        from pydantic import ValidationError

        try:
            return get_method(self.method).config_class(**unflatten(self.params))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
            got = f" (got {first['input']!r})" if "input" in first and where else ""
            raise TrialConfigError(
                f"trial {self.key}: the configuration is invalid for {self.method}: "
                f"{where or 'config'}: {first['msg'].removeprefix('Value error, ')}{got}"
            ) from None

    def total_epochs(self) -> int:
        """Epochs over every stage of the trial (training, then e.g. self-labelling)."""
        return get_method(self.method).total_epochs(self.method_config())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        return cls(**data)


def expand(study: Study) -> list[TrialSpec]:
    """Every trial of a grid/random/no-search study, in a stable order."""
    with_search = study.search is not None
    trials = []
    for variant in study.variants:
        points = search_points(study.search, variant)
        for dataset in study.datasets:
            for n, point in enumerate(points):
                for seed in study.seeds:
                    trials.append(
                        TrialSpec(
                            study=study.name,
                            method=study.method,
                            variant=variant,
                            dataset=dataset.model_dump(),
                            seed=seed,
                            params={**study.overrides(variant), **point},
                            sample=n if with_search else None,
                        )
                    )
    trials += baseline_trials(study)
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise StudyFileError(
            "<study>", ("datasets",), None, f"two trials share the name {duplicate!r}"
        )
    return trials


#: The method and overrides of each baseline row, from the study's method and base.
BASELINE_METHOD = {"pixels": "kmeans"}


def baseline_trials(study: Study) -> list[TrialSpec]:
    """The study's baseline rows on every data set and seed.

    ``pixels``: k-means on the raw pixels (method ``kmeans``) at the study's ``image_size``;
    ``untrained``: the study's method with ``base`` and its :meth:`Method.untrained_overrides`
    (no epochs in any stage), clustered by k-means on its initial features.
    """
    base = flatten(study.base)
    trials = []
    for baseline in study.baselines:
        if baseline == "pixels":
            method = BASELINE_METHOD[baseline]
            params = {k: v for k, v in base.items() if k == "image_size"}
        else:
            method = study.method
            params = {**base, **get_method(method).untrained_overrides()}
        for dataset in study.datasets:
            for seed in study.seeds:
                trials.append(
                    TrialSpec(study.name, method, baseline, dataset.model_dump(), seed, params)
                )
    return trials


class OptunaSpace:
    """The search space as an Optuna define-by-run function (picklable, for resuming).

    Suggested names are ``search/<key>``; Tune unflattens them into ``config["search"]``.
    """

    def __init__(self, space: dict[str, Domain]) -> None:
        self.space = space

    def __call__(self, trial: Any) -> None:
        for key, domain in self.space.items():
            name = f"search/{key}"
            if domain.values is not None:
                trial.suggest_categorical(name, domain.values)
            elif domain.distribution is None:
                trial.suggest_categorical(name, [domain.value])
            elif domain.distribution in ("uniform", "loguniform"):
                log = domain.distribution == "loguniform"
                step = None if log else domain.step
                trial.suggest_float(name, domain.low, domain.high, log=log, step=step)
            else:
                assert domain.low is not None and domain.high is not None
                step = int(domain.step or 1)
                log = domain.distribution == "logint"
                trial.suggest_int(name, int(domain.low), int(domain.high), step=step, log=log)


def first_trial(study: Study) -> TrialSpec:
    """The first variant on the first data set: optuna's template, ASHA's epoch budget."""
    variant = next(iter(study.variants))
    dataset = study.datasets[0].model_dump()
    return TrialSpec(
        study.name, study.method, variant, dataset, study.seeds[0], study.overrides(variant), 0
    )


def planned_epochs(study: Study) -> int:
    """Epochs of every planned trial together: what the study's ETA counts down.

    Optuna's trials are drawn later: each counts the first variant's epochs.
    """
    if study.adaptive:
        return trial_count(study) * epochs_or_zero(first_trial(study))
    return sum(epochs_or_zero(trial) for trial in expand(study))


def epochs_or_zero(trial: TrialSpec) -> int:
    """A trial's epochs; 0 for one whose configuration is invalid (it fails at once)."""
    try:
        return trial.total_epochs()
    except TrialConfigError:
        return 0


def trial_count(study: Study) -> int:
    """How many trials the study runs (optuna: its sample budget × seeds)."""
    return planned_trials(study)


def describe_plan(study: Study, verbose: bool = False) -> str:
    """The trials ``ablate plan`` prints, with their resolved configs and their count.

    :func:`ablate.reuse_plan.plan_summary` follows: what is done already, and the cost.
    """
    lines = [f"study {study.name!r}: method {study.method}, {count(trial_count(study), 'trial')}"]
    if study.description:
        lines.append(f"  {study.description}")
    if study.search is not None and study.adaptive:
        s = study.search
        lines.append(
            f"  optuna (TPE) samples {s.num_samples} configurations adaptively, each run for "
            f"seeds {study.seeds}; objective {s.mode} {s.metric}; space: {', '.join(s.space)}"
        )
        trials: list[TrialSpec] = []
    else:
        trials = expand(study)
    for trial in trials:
        resolved = trial.method_config().flat()
        defaults = get_method(trial.method).config_class().flat()
        shown = resolved if verbose else {k: v for k, v in resolved.items() if v != defaults[k]}
        body = ", ".join(f"{k}={v}" for k, v in shown.items()) or "(method defaults)"
        lines.append(f"  {trial.key}: {body}")
    return "\n".join(lines) + "\n"
