"""A trial's key: everything its outcome depends on, and nothing else.

Ablation studies of one method overlap: GACL's full model at k = 8 is a row of its loss
ablation and a point of its neighbour sweep, and every study re-trains the full model on
every seed. A trial's *key* is the hash of its material - the method, its resolved
configuration, the data set, its options and its content, the seed, the loop settings that
change the result (steps per epoch, precision, workers, batch-norm synchronisation, device
type), the fingerprint of the code that trains it and the libraries' releases - and nothing
else (not the study, the variant's name or the tracking settings). The trial store
(:mod:`ablate.trial_reuse`) keeps finished trials under it; ``plan`` computes it before launch
to say which trials are done already (:mod:`ablate.reuse_plan`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.keyed_store import KeyedStore
from ablate.planner import TrialConfigError, TrialSpec
from ablate.study import RunSettings

if TYPE_CHECKING:
    from trainables.data_identity import DataIdentity

TRIALS_FOLDER = "trials"
#: The ablate modules that build and run a trial from its spec (the others schedule it and
#: record it): an edit to them may change what a trial computes.
TRIAL_CODE = ("trainable.py", "planner.py", "trial_keys.py")


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


@dataclass
class TrialKeys:
    """Each trial's key material (by trial name), and the data sets that could not be read."""

    materials: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def hashed(self) -> dict[str, str]:
        """Each trial's key, as the trial store names its folder."""
        store = KeyedStore(Path("."), {})  # the context trials open the store with
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
    if study.adaptive:
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
