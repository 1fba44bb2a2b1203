"""Finished trials, kept by what determines them, so that no study trains one twice.

Ablation studies of one method overlap: GACL's full model at k = 8 is a row of its loss
ablation and a point of its neighbour sweep, and every study re-trains the full model on
every seed. A trial's *key* is everything its outcome depends on - the method, its resolved
configuration, the data set and its options, the seed, the loop settings that change the
result (steps per epoch, precision, workers, batch-norm synchronisation, device type) and the
fingerprint of the code that trains it - and nothing else (not the study, the variant's name
or the tracking settings).

A finished trial is published under its key in ``<run.trial_store>/<key>/`` (default
``<run.storage>/trials``): its epoch reports, final checkpoint, assignments and config. A
later trial with the same key, in any study that shares the store, replays those reports
instead of training (its MLflow run is tagged ``ablate.reused_from``); one that starts while
another trains the key waits for it, through the same ``flock`` claims as shared stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.planner import TrialSpec
from ablate.stage_cache import StageCache
from ablate.study import RunSettings

REPORTS_FILE = "reports.jsonl"
TRIALS_FOLDER = "trials"


def trial_material(spec: TrialSpec, run: RunSettings, workers: int, device: str) -> dict[str, Any]:
    """What a trial's outcome depends on (its key is this material's hash)."""
    import torch

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
        "torch": torch.__version__,
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
    if not run.reuse_trials:
        return None
    return StageCache(trial_store_root(run), {}, trial=trial)


def write_reports(folder: Path, reports: list[dict[str, Any]]) -> None:
    """Every epoch's report, one JSON object a line (values that are not JSON: as text)."""
    lines = [json.dumps(report, default=str) for report in reports]
    (folder / REPORTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_reports(folder: Path) -> list[dict[str, Any]]:
    text = (folder / REPORTS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
