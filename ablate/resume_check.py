"""A resumed study must be the study that was started: what an edit may change, and what not.

Tune restores the trials, their retry budget (``run.max_retries``) and the MLflow logger
(``tracking``) as they were pickled at the first run, so edits of those would be silently
dropped, and other edits would mix two studies in one. The first run stores the study's
fingerprint (:data:`PLAN_FILE`); each resume compares against it and names what changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.study import Study, absolute_uri
from ablate.yaml_source import StudyFileError

PLAN_FILE = "ablate_plan.json"

#: Edits a resumed study takes up: they change what reports say, never what a trial computes.
RESUME_ACCEPTS = ("description", "reference", "analysis")


def fingerprint(study: Study) -> str:
    """Everything resume must find unchanged (tracking with its URI made absolute)."""
    data = study.model_dump(mode="json", exclude=set(RESUME_ACCEPTS))
    data["tracking"]["uri"] = absolute_uri(study.tracking.uri)
    return json.dumps(data, sort_keys=True)


def changed_keys(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ.

    Only keys the stored plan holds count: older plans held fewer, and resume must not
    refuse them for it.
    """
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [] if before == after else [prefix or "(the study)"]
    out = []
    for key, value in before.items():
        if not prefix and key in RESUME_ACCEPTS:
            continue
        out += changed_keys(value, after.get(key), f"{prefix}.{key}" if prefix else key)
    return out


def check_unchanged(study: Study, study_file: str, experiment_dir: Path) -> None:
    """Refuse a resume after an edit it cannot apply, naming the keys that changed.

    Tune restores the trials, their retry budget (``run.max_retries``) and the MLflow logger
    (``tracking``) as they were pickled at the first run, so those edits would be silently
    dropped; other edits would mix two studies in one.
    """
    stored = experiment_dir / PLAN_FILE
    if not stored.exists():
        return
    before = json.loads(stored.read_text(encoding="utf-8"))
    changed = changed_keys(before, json.loads(fingerprint(study)))
    if not changed:
        return
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    first = changed[0]
    was = before
    for part in first.split("."):
        was = was.get(part) if isinstance(was, dict) else None
    raise StudyFileError(
        study_file,
        (),
        None,
        f"{shown} changed since the study's results in {experiment_dir} were started "
        f"({first} was {was!r}); a resume cannot apply that (it accepts edits of "
        f"{', '.join(RESUME_ACCEPTS)} only). Set it back, give the study a new name, or "
        "delete that folder to start over",
    )
