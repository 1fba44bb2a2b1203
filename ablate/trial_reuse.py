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
those reports instead of training (its MLflow run is tagged ``ablate.reused_from``), after
:mod:`ablate.replay_checks` found the folder to be this trial's; one that starts while another
trains the key waits for it, through the same ``flock`` claims as shared stages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.planner import TrialConfigError, TrialSpec
from ablate.replay_checks import REPORTS_FILE, as_stored, read_manifest
from ablate.study import RunSettings

if TYPE_CHECKING:
    from ablate.stage_cache import StageCache
    from trainables.data_identity import DataIdentity

TRIALS_FOLDER = "trials"
#: The ablate modules that build and run a trial from its spec (the others schedule it and
#: record it): an edit to them may change what a trial computes.
TRIAL_CODE = ("trainable.py", "planner.py")


@cache
def trial_code_fingerprint() -> str:
    """SHA-256 of :data:`TRIAL_CODE`'s sources (the package version never changed)."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for module in TRIAL_CODE:
        digest.update(module.encode() + b"\0" + (here / module).read_bytes())
    return digest.hexdigest()[:24]


def trial_material(
    spec: TrialSpec, run: RunSettings, workers: int, device: str, data: DataIdentity
) -> dict[str, Any]:
    """What a trial's outcome depends on (its key is this material's hash).

    ``device`` is the one the trial trains on (:func:`trial_device`); ``data`` the identity
    of the data it reads (:func:`trial_data_identity`).
    """
    from trainables.fingerprint import library_versions, method_fingerprint
    from trainables.registry import get_method

    entry = spec.dataset_entry
    module = get_method(spec.method).__module__.rsplit(".", 1)[-1]
    return {
        "kind": "trial",
        "method": spec.method,
        "config": spec.method_config().model_dump(mode="json"),
        "dataset": {"name": entry.name, "options": entry.options},
        "data": data.material(),
        "seed": spec.seed,
        "steps_per_epoch": run.steps_per_epoch,
        "precision": "bf16" if device == "cuda" and run.amp != "off" else "fp32",
        "workers": workers,
        "sync_bn": run.sync_bn if workers > 1 else None,
        "device": device,
        "code": method_fingerprint(module),
        "trial_code": trial_code_fingerprint(),
        "libraries": library_versions(),
    }


def trial_device(run: RunSettings, gpus: float) -> str:
    """The device type a trial trains on, decided once, before launch, by this rule.

    ``run.device`` when the study names one; otherwise CUDA exactly when the trial holds GPUs.
    A zero-GPU trial trains on the CPU even where a GPU is visible to it (Ray 2.60 leaves a
    node's GPUs visible to a trial that asked for none: ray-project/ray#54868), so the key,
    the precision and ``plan`` all tell the truth.
    """
    if run.device != "auto":
        return run.device.split(":")[0]
    return "cuda" if gpus > 0 else "cpu"


def loop_device(run: RunSettings, gpus: float) -> str:
    """The torch device string the loop gets: ``run.device`` as written, else the rule's."""
    return run.device if run.device != "auto" else trial_device(run, gpus)


def data_arguments(spec: TrialSpec, run: RunSettings) -> dict[str, Any]:
    """Where and how a trial reads its data set (the arguments of ``load_dataset`` and kin)."""
    entry = spec.dataset_entry
    return {
        "name": entry.name,
        "root": entry.root or run.data_root,
        "options": entry.options,
        "resolution": spec.method_config().image_size,  # image folders decode at it
    }


def trial_data_identity(spec: TrialSpec, run: RunSettings, download: bool = False) -> DataIdentity:
    """The identity of the data this trial reads (from the study's data root)."""
    from trainables.data_identity import data_identity

    download = download and spec.dataset_entry.download
    return data_identity(**data_arguments(spec, run), download=download)


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
    unknown: list[str] = field(default_factory=list)  # data sets not readable here

    @property
    def names(self) -> set[str]:
        return {*self.done, *self.repeats}


@dataclass
class TrialKeys:
    """Each trial's key material (by trial name), and the data sets that could not be read."""

    materials: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def hashed(self) -> dict[str, str]:
        """Each trial's key, as the trial store names its folder."""
        from ablate.stage_cache import StageCache

        store = StageCache(Path("."), {})  # the context trials open the store with
        return {name: store.key(material) for name, material in self.materials.items()}


def trial_keys(study: Any) -> TrialKeys:
    """Each trial's key material as the trial will compute it; invalid points left out.

    An optuna study's trials are not known before it runs: it has none here. A data set that
    is not on this machine (a study planned away from its cluster) has no identity here: its
    trials are left out and named in ``unknown``.
    """
    from ablate.planner import expand
    from trainables.datasets import DatasetNotFoundError

    keys = TrialKeys()
    if study.search is not None and study.search.algorithm == "optuna":
        return keys
    device = trial_device(study.run, study.resources.gpus)
    identities: dict[str, DataIdentity | None] = {}  # each data set is read once
    for trial in expand(study):
        try:
            config = trial.method_config()
        except TrialConfigError:  # an invalid point fails alone when it runs
            continue
        data = f"{trial.dataset_entry.label} at {config.image_size} px"
        if data not in identities:
            try:
                identities[data] = trial_data_identity(trial, study.run)
            except DatasetNotFoundError:
                identities[data] = None
                keys.unknown.append(trial.dataset_entry.label)
        identity = identities[data]
        if identity is not None:
            material = trial_material(trial, study.run, study.resources.workers, device, identity)
            keys.materials[trial.key] = material
    return keys


def replayed(study: Any) -> Replayed:
    """Which trials replay instead of training, as far as the driver can tell before launch.

    A published folder counts when its manifest holds the trial's key material; the trial
    checks the rest (:mod:`ablate.replay_checks`) before it replays.
    """
    from ablate.stage_cache import StageCache

    if not study.run.reuse_trials:
        return Replayed()
    store = StageCache(trial_store_root(study.run), {})  # the context trials open it with
    keys = trial_keys(study)
    found, seen = Replayed(unknown=keys.unknown), set()
    for name, material in keys.materials.items():  # in the study's order: the first trains
        key = store.key(material)
        manifest = read_manifest(store.root / key)
        if manifest is not None and manifest.get("material") == as_stored(material):
            found.done.append(name)
        elif key in seen:
            found.repeats.append(name)
        seen.add(key)
    return found


def replay_epochs(study: Any, found: Replayed) -> dict[str, int]:
    """The epochs of each trial expected to replay (by name): work the study's ETA skips."""
    from ablate.planner import epochs_or_zero, expand

    if not found.names:
        return {}
    return {t.key: epochs_or_zero(t) for t in expand(study) if t.key in found.names}


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
    for label in found.unknown:
        lines.append(
            f"data set {label} is not readable here: trials done already on it are not counted "
            "(each trial still looks itself up where it runs)"
        )
    return lines + same_configuration_lines(study)


def write_reports(folder: Path, reports: list[dict[str, Any]]) -> None:
    """Every epoch's report, one JSON object a line (values that are not JSON: as text)."""
    lines = [json.dumps(report, default=str) for report in reports]
    (folder / REPORTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def plan_summary(study: Any) -> str:
    """What ``ablate plan`` ends with: trials done already, and the GPU-hours left to train."""
    from ablate.planner import trial_count

    found = replayed(study)
    lines = reuse_lines(study, found)
    total, skipped = trial_count(study), len(found.names)
    per_trial = study.resources.gpu_hours_per_trial
    hours = (
        "unknown (set resources.gpu_hours_per_trial, or measure: ablate plan --measure)"
        if per_trial is None
        else f"{(total - skipped) * per_trial:.1f}"
        + (f" ({skipped * per_trial:.1f} saved)" if skipped else "")
    )
    trained = f" ({total - skipped} to train, {skipped} replayed)" if skipped else ""
    lines.append(f"trials: {total}{trained}; estimated GPU-hours: {hours}")
    return "\n".join(lines) + "\n"
