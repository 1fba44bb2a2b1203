"""A study's search vocabulary: dimensions, the search over them, and their points.

``{values: [...]}``, ``{value: x}`` and ``{distribution: ..., low, high, step?}`` as in optuna;
a grid runs every combination, a random search draws seeded points, optuna draws later.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ablate.schema_base import Closed

#: Search bounds beyond this are a typo (or ``.inf``), not a hyperparameter.
MAX_BOUND = 1e12


class Domain(Closed):
    """One search dimension.

    ``{values: [...]}`` (grid points, or choices for random and optuna), ``{value: x}`` (a
    constant), or ``{distribution: uniform|loguniform|int|logint, low, high, step?}`` (bounds
    inclusive; ``step`` quantises).
    """

    values: list[Any] | None = None
    value: Any = None
    distribution: Literal["uniform", "loguniform", "int", "logint"] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> Domain:
        forms = [
            self.values is not None,
            "value" in self.model_fields_set,
            self.distribution is not None,
        ]
        if sum(forms) != 1:
            raise ValueError(
                "give exactly one of 'values: [...]', 'value: x' or 'distribution: ...'"
            )
        if self.values is not None and not self.values:
            raise ValueError("empty 'values' list: a search dimension needs at least one value")
        if self.distribution is not None:
            if self.low is None or self.high is None:
                raise ValueError(f"distribution {self.distribution!r} needs 'low' and 'high'")
            if not (math.isfinite(self.low) and math.isfinite(self.high)):
                raise ValueError(f"needs finite bounds; got low={self.low}, high={self.high}")
            if max(abs(self.low), abs(self.high)) > MAX_BOUND:
                raise ValueError(
                    f"bounds beyond ±{MAX_BOUND:.0e} are no hyperparameter; got low={self.low}, "
                    f"high={self.high}"
                )
            if not self.low < self.high:
                raise ValueError(f"needs low < high; got low={self.low}, high={self.high}")
            if self.distribution in ("loguniform", "logint") and self.low <= 0:
                raise ValueError(f"{self.distribution} needs low > 0; got {self.low}")
            if self.distribution in ("int", "logint") and not (
                float(self.low).is_integer() and float(self.high).is_integer()
            ):
                raise ValueError(
                    f"{self.distribution} needs integer bounds; got {self.low}, {self.high}"
                )
            if self.step is not None:
                if self.distribution in ("int", "logint") and not float(self.step).is_integer():
                    raise ValueError(
                        f"{self.distribution} needs a whole-number step (1, 2, ...); got "
                        f"{self.step}"
                    )
                if self.step > self.high - self.low:
                    raise ValueError(
                        f"step {self.step} is wider than the range {self.low}..{self.high}"
                    )
        elif self.low is not None or self.high is not None or self.step is not None:
            raise ValueError("'low', 'high' and 'step' belong to a 'distribution'")
        return self

    def candidates(self) -> list[Any]:
        """Values to check against the method's config (a distribution's bounds)."""
        if self.values is not None:
            return list(self.values)
        if self.distribution is None:
            return [self.value]
        as_int = self.distribution in ("int", "logint")
        assert self.low is not None and self.high is not None
        return [int(self.low), int(self.high)] if as_int else [self.low, self.high]


class Search(Closed):
    """The search: algorithm, budget, objective and space."""

    algorithm: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(1, ge=1)
    metric: str = "acc"
    mode: Literal["max", "min"] = "max"
    seed: int = 0
    space: dict[str, Domain] = Field(default_factory=dict)
    variant_space: dict[str, dict[str, Domain]] = Field(default_factory=dict)

    @property
    def adaptive(self) -> bool:
        """Whether points are drawn while the study runs (optuna's TPE).

        Each is steered by the results so far: no trial is known before launch, and one
        variant on one data set is searched at a time.
        """
        return self.algorithm == "optuna"

    @property
    def selects(self) -> bool:
        """Whether the search picks among its points by ``metric`` (random, optuna)."""
        return self.algorithm != "grid"

    def points(self, variant: str) -> int:
        """How many points a variant's search trains (grid: the product; without building it)."""
        if self.algorithm != "grid":
            return self.num_samples
        return math.prod(len(d.candidates()) for d in self.space_for(variant).values())

    def space_for(self, variant: str) -> dict[str, Domain]:
        """The shared space plus the variant's own (a variant's key wins)."""
        return {**self.space, **self.variant_space.get(variant, {})}

    def searched_keys(self) -> list[str]:
        keys = list(self.space)
        for own in self.variant_space.values():
            keys += [k for k in own if k not in keys]
        return keys

    @model_validator(mode="after")
    def _consistent(self) -> Search:
        if not self.space and not self.variant_space:
            raise ValueError(
                "'space' is empty: name at least one hyperparameter to search (in 'space', "
                "or per variant in 'variant_space')"
            )
        if self.adaptive and self.variant_space:
            raise ValueError("optuna searches one variant: put its space under 'space'")
        if self.algorithm == "grid":
            domains = [self.space, *self.variant_space.values()]
            sampled = [k for space in domains for k, d in space.items() if d.distribution]
            if sampled:
                raise ValueError(
                    f"grid search needs 'values' lists; {', '.join(sampled)} use a distribution "
                    "(use algorithm: random or optuna)"
                )
            if self.num_samples != 1:
                raise ValueError(
                    "num_samples applies to random and optuna; grid runs every combination"
                )
        return self


def _quantise(value: float, step: float | None, low: float) -> float:
    return value if step is None else low + round((value - low) / step) * step


def sample_domain(domain: Domain, rng: np.random.Generator) -> Any:
    """One draw from a search dimension (bounds inclusive; ``step`` quantises)."""
    if domain.values is not None:
        return domain.values[int(rng.integers(len(domain.values)))]
    if domain.distribution is None:
        return domain.value
    assert domain.low is not None and domain.high is not None
    low, high = domain.low, domain.high
    if domain.distribution == "uniform":
        return float(_quantise(rng.uniform(low, high), domain.step, low))
    if domain.distribution == "loguniform":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return float(min(max(_quantise(value, domain.step, low), low), high))
    step = int(domain.step or 1)
    if domain.distribution == "int":
        return int(low) + step * int(rng.integers(0, (int(high) - int(low)) // step + 1))
    value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))  # logint
    return int(min(max(int(low) + step * int((value - low) // step), int(low)), int(high)))


def search_points(search: Search | None, variant: str | None = None) -> list[dict[str, Any]]:
    """The hyperparameter points of a grid or random search ([{}] without a search).

    ``variant`` adds that variant's own space (``search.variant_space``) to the shared one.
    """
    if search is None:
        return [{}]
    space = search.space if variant is None else search.space_for(variant)
    keys = list(space)
    if search.algorithm == "grid":
        grids = [space[k].candidates() for k in keys]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grids)]
    if search.algorithm == "random":
        rng = np.random.default_rng(search.seed)
        return [{k: sample_domain(space[k], rng) for k in keys} for _ in range(search.num_samples)]
    raise ValueError(f"{search.algorithm} samples adaptively; it has no fixed points")
