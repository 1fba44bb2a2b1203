"""Finished trials, kept by what determines them, so that no study trains one twice.

Ablation studies of one method overlap: GACL's full model at k = 8 is a row of its loss
ablation and a point of its neighbour sweep, and every study re-trains the full model on
every seed. A trial's *key* is everything its outcome depends on - the method, its resolved
configuration, the data set and its options, the seed, the loop settings that change the
result (steps per epoch, precision, workers, batch-norm synchronisation, device type) and the
fingerprint of the code that trains it - and nothing else (not the study, the variant's name
or the tracking settings).

A finished trial is published under its key in ``<run.trial_store>/<key>/`` (default
``<run.storage>/trials``): its final checkpoint, which holds its epoch reports, assignments
and config. A later trial with the same key, in any study that shares the store, replays
those reports instead of training (its MLflow run is tagged ``ablate.reused_from``); one
that starts while another trains the key waits for it, through the same ``flock`` claims as
shared stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.planner import TrialConfigError, TrialSpec
from ablate.study import RunSettings

if TYPE_CHECKING:
    from ablate.stage_cache import StageCache

REPORTS_FILE = "reports.jsonl"
TRIALS_FOLDER = "trials"


def trial_material(spec: TrialSpec, run: RunSettings, workers: int, device: str) -> dict[str, Any]:
    """What a trial's outcome depends on (its key is this material's hash)."""
    from importlib.metadata import version

    from trainables.fingerprint import method_fingerprint
    from trainables.registry import get_method

    entry = spec.dataset_entry
    module = get_method(spec.method).__module__.rsplit(".", 1)[-1]
    return {
        "kind": "trial",
        "method": spec.method,
        "config": spec.method_config().model_dump(mode="json"),
        "dataset": {"name": entry.name, "options": entry.options},
        "seed": spec.seed,
        "steps_per_epoch": run.steps_per_epoch,
        "precision": "bf16" if device == "cuda" and run.amp != "off" else "fp32",
        "workers": workers,
        "sync_bn": run.sync_bn if workers > 1 else None,
        "device": device,
        "code": method_fingerprint(module),
        "torch": version("torch"),
    }


def planned_device(run: RunSettings, gpus: float) -> str:
    """The device type a trial will train on, as the driver can tell before launch."""
    if run.device != "auto":
        return run.device.split(":")[0]
    return "cuda" if gpus > 0 else "cpu"


def trial_store_root(run: RunSettings) -> Path:
    return Path(run.trial_store or Path(run.storage) / TRIALS_FOLDER).resolve()


def open_store(run: RunSettings, trial: str) -> StageCache | None:
    """The study's store of finished trials, unless ``run.reuse_trials`` is off."""
    from ablate.stage_cache import StageCache  # imports torch: only where trials run

    if not run.reuse_trials:
        return None
    return StageCache(trial_store_root(run), {}, trial=trial)


@dataclass
class Replayed:
    """The trials (by name) of a study that will not train: their key is trained already."""

    done: list[str] = field(default_factory=list)  # published in the trial store
    repeats: list[str] = field(default_factory=list)  # an earlier trial's key, in this study

    @property
    def names(self) -> set[str]:
        return {*self.done, *self.repeats}


def trial_keys(study: Any) -> dict[str, str]:
    """Each trial's key (by trial name) as the trial will compute it; invalid points left out.

    An optuna study's trials are not known before it runs: it has none here.
    """
    from ablate.planner import expand
    from ablate.stage_cache import StageCache

    if study.search is not None and study.search.algorithm == "optuna":
        return {}
    store = StageCache(trial_store_root(study.run), {})  # the context trials open it with
    device = planned_device(study.run, study.resources.gpus)
    keys = {}
    for trial in expand(study):
        try:
            material = trial_material(trial, study.run, study.resources.workers, device)
        except TrialConfigError:  # an invalid point fails alone when it runs
            continue
        keys[trial.key] = store.key(material)
    return keys


def replayed(study: Any) -> Replayed:
    """Which trials replay instead of training, as far as the driver can tell before launch."""
    from ablate.stage_cache import STATE_FILE

    if not study.run.reuse_trials:
        return Replayed()
    root = trial_store_root(study.run)
    found, seen = Replayed(), set()
    for name, key in trial_keys(study).items():  # in the study's order: the first trains
        if (root / key / STATE_FILE).exists():
            found.done.append(name)
        elif key in seen:
            found.repeats.append(name)
        seen.add(key)
    return found


def equal_variants(study: Any) -> list[tuple[str, str]]:
    """Pairs of variants whose resolved configurations are equal: one trial between them."""
    from trainables.config import unflatten

    config_class = study.method_config_class()
    resolved = {
        v: config_class(**unflatten(study.overrides(v))).model_dump() for v in study.variants
    }
    names = list(resolved)
    return [
        (a, b) for i, a in enumerate(names) for b in names[i + 1 :] if resolved[a] == resolved[b]
    ]


def same_configuration_lines(study: Any) -> list[str]:
    """Variants that resolve to one configuration: one trains, the other replays it."""
    return [
        f"variants {a!r} and {b!r} resolve to the same configuration: one trains, "
        "the other replays it (both rows are reported)"
        for a, b in equal_variants(study)
    ]


def reuse_lines(study: Any, found: Replayed) -> list[str]:
    """What ``plan`` and ``run`` say before launch: trials done already, variants that are one."""
    from ablate.planner import trial_count

    total = trial_count(study)
    lines = []
    if found.done:
        lines.append(
            f"{len(found.done)} of {total} trial{'' if total == 1 else 's'} done already (in "
            "the trial store, by this or another study): replayed, not trained"
        )
    return lines + same_configuration_lines(study)


def write_reports(folder: Path, reports: list[dict[str, Any]]) -> None:
    """Every epoch's report, one JSON object a line (values that are not JSON: as text)."""
    lines = [json.dumps(report, default=str) for report in reports]
    (folder / REPORTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_reports(folder: Path) -> list[dict[str, Any]]:
    text = (folder / REPORTS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
