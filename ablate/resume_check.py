"""A resumed study must be the study that was started: what an edit may change, and what not.

Tune restores the trials, their configurations, their retry budget (``run.max_retries``) and
the MLflow logger (``tracking``) as they were pickled at the first run, so an edit of those
would be silently dropped, and a new variant or seed would never run. The first run stores
the study's plan (:data:`PLAN_FILE`); each resume compares the study file against it in both
directions - a key changed, added or removed - and names what changed.

A key may be missing from a stored plan only because the plan was written by an older
version of this file's format, which did not hold it: :data:`ADDED_IN` says which keys each
version added, and those alone are excused. A key missing for any other reason is an edit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ablate.study import Study, absolute_uri
from ablate.yaml_source import StudyFileError
from trainables.config import flatten
from trainables.regular_files import read_regular

PLAN_FILE = "ablate_plan.json"
#: The plan's format. 1: the bare study, as written up to ablate 0f6fbc9 (no version field);
#: 2: ``{"version": 2, "study": ...}`` with ``base`` and each variant's overrides as dotted keys.
PLAN_VERSION = 2
#: Keys (dotted) that plans of a version before the one named did not hold.
ADDED_IN: dict[int, tuple[str, ...]] = {2: ()}

#: Edits a resumed study takes up: they change what reports say, never what a trial computes.
RESUME_ACCEPTS = ("description", "reference", "analysis")


def _normalised(study: dict[str, Any]) -> dict[str, Any]:
    """Overrides as dotted keys, so ``optim: {lr: 1}`` and ``optim.lr: 1`` are one plan."""
    out = dict(study)
    if isinstance(out.get("base"), dict):
        out["base"] = flatten(out["base"])
    if isinstance(out.get("variants"), dict):
        out["variants"] = {
            name: flatten(overrides) if isinstance(overrides, dict) else overrides
            for name, overrides in out["variants"].items()
        }
    return out


def plan_of(study: Study) -> dict[str, Any]:
    """Everything a resume must find unchanged (tracking with its URI made absolute)."""
    data = study.model_dump(mode="json", exclude=set(RESUME_ACCEPTS))
    data["tracking"]["uri"] = absolute_uri(study.tracking.uri)
    return _normalised(data)


def fingerprint(study: Study) -> str:
    """The plan file's text for ``study``."""
    return json.dumps({"version": PLAN_VERSION, "study": plan_of(study)}, sort_keys=True)


def stored_plan(text: str) -> tuple[int, dict[str, Any]]:
    """A plan file's version and study (a version-1 file is the bare study)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if "version" in data and "study" in data:
        return int(data["version"]), _normalised(dict(data["study"]))
    return 1, _normalised(data)


def excused(version: int) -> set[str]:
    """Keys a plan of ``version`` may lack: those later versions added."""
    return {key for added, keys in ADDED_IN.items() if added > version for key in keys}


def changes(
    before: Any, after: Any, prefix: str = "", missing_ok: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """``(dotted key, what happened)`` for each difference: changed, added or removed."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        if before == after:
            return []
        return [(prefix or "(the study)", f"was {before!r}, now {after!r}")]
    out = []
    for key in [*before, *(k for k in after if k not in before)]:
        dotted = f"{prefix}.{key}" if prefix else key
        if not prefix and key in RESUME_ACCEPTS:
            continue
        if key not in before:
            if dotted not in missing_ok:
                out.append((dotted, f"added ({after[key]!r})"))
        elif key not in after:
            out.append((dotted, f"removed (was {before[key]!r})"))
        else:
            out += changes(before[key], after[key], dotted, missing_ok)
    return out


def check_unchanged(study: Study, study_file: str, experiment_dir: Path) -> None:
    """Refuse a resume after an edit it cannot apply, naming what changed and what to do."""
    stored = experiment_dir / PLAN_FILE
    if not os.path.lexists(stored):
        return
    try:
        version, before = stored_plan(read_regular(stored).decode("utf-8"))
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise StudyFileError(
            study_file,
            (),
            None,
            f"the stored plan {stored} cannot be read ({error}), so a resume cannot tell "
            f"whether the study changed; {_how_to_proceed(study_file)}",
        ) from None
    found = changes(before, plan_of(study), missing_ok=frozenset(excused(version)))
    if not found:
        return
    shown = "; ".join(f"{key} {what}" for key, what in found[:5])
    if len(found) > 5:
        shown += f"; and {len(found) - 5} more"
    raise StudyFileError(
        study_file,
        (),
        None,
        f"the study changed since its results in {experiment_dir} were started: {shown}. "
        "A resume cannot apply that: Tune restores each trial as first planned, so the edit "
        "would be silently dropped (a resume accepts edits of "
        f"{', '.join(RESUME_ACCEPTS)} only). {_how_to_proceed(study_file)}",
    )


def _how_to_proceed(study_file: str) -> str:
    return (
        "Set it back; or give the study a new `name` (a new study: trials whose key the "
        "trial store holds replay, the rest train); or `ablate run "
        f"{study_file} --restart` to start this study over as the file now says (its earlier "
        "run's saved state is set aside and its MLflow runs are deleted, restorable with "
        "`mlflow runs restore`; unchanged trials replay from the trial store, new or changed "
        "ones train)"
    )
