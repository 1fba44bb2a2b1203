"""What a published trial must be before its numbers are reported as another trial's.

The trial store is a shared folder: another study, another user or a broken disk may have put
anything under a key. A trial replays a published one only after copying its files into a
private folder - regular files only, opened without following links, so a link to a private
file is neither read nor uploaded - and checking the copies:

- ``manifest.json`` names this key and holds this trial's full key material;
- ``config.yaml`` is this trial's resolved configuration;
- ``reports.jsonl`` holds one report per epoch, ending at this trial's last epoch;
- ``assignments.npy`` loads without pickle as integers, one per sample of this trial's data;
- the last report's ACC, NMI and ARI are those of the assignments against this data's labels;
- ``state.pt`` loads as plain tensors and data (``weights_only``) of this method at that epoch,
  written by the trial of this key (its ``owner``: a genuine folder of another seed, copied
  under this key with a rewritten manifest, is refused).

A folder that fails any check is reported in one line and the trial trains instead. These
checks catch damaged, stale, foreign and planted folders; a writer who forges every file
consistently is not stopped: give write access to a trial store only to people whose results
you would publish.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ablate.keyed_store import MANIFEST_FILE, STATE_FILE
from analysis.run_schema import ASSIGNMENTS_ARTIFACT, CONFIG_ARTIFACT
from trainables.regular_files import NotRegularFile, open_regular, read_regular

#: A trial's checkpoint beside the loop's state: every epoch's report so far, and in the
#: final one its cluster assignments and resolved configuration.
REPORTS_FILE = "reports.jsonl"
ASSIGNMENTS_FILE = ASSIGNMENTS_ARTIFACT  # uploaded as the run's artifact of that name
CONFIG_FILE = CONFIG_ARTIFACT
#: What a published trial holds; anything else in its folder is left behind.
PUBLISHED_FILES = (STATE_FILE, MANIFEST_FILE, REPORTS_FILE, ASSIGNMENTS_FILE, CONFIG_FILE)
#: Larger than any state a method here writes (ResNet-34 with banks: about 200 MB).
MAX_FILE_BYTES = 4 << 30
SCORES = ("acc", "nmi", "ari")


class RefusedReplay(Exception):
    """A published trial this trial must not replay; the message says why."""


@dataclass(frozen=True)
class CheckedTrial:
    """A published trial that passed every check: its epoch reports and who produced it."""

    reports: list[dict[str, Any]]
    produced_by: str


@dataclass(frozen=True)
class Expected:
    """What this trial knows of itself, against which a published trial is checked."""

    key: str
    material: dict[str, Any]
    config: dict[str, Any]
    method: str
    epochs: int
    samples: int
    scores: Callable[[np.ndarray], dict[str, float]]  # ACC/NMI/ARI of assignments (labels)


def copy_published(folder: Path, target: Path) -> None:
    """Copy the published files as regular files, never following a link nor opening a FIFO."""
    for name in PUBLISHED_FILES:
        try:
            fd = open_regular(folder / name, MAX_FILE_BYTES)
        except FileNotFoundError:
            continue
        except NotRegularFile as error:
            raise RefusedReplay(str(error)) from None
        with os.fdopen(fd, "rb") as handle, (target / name).open("wb") as out:
            while chunk := handle.read(1 << 20):
                out.write(chunk)


def as_stored(value: Any) -> Any:
    """``value`` as it reads back from a manifest (tuples as lists, unknowns as text)."""
    return json.loads(json.dumps(value, default=str))


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A published folder's manifest; None when it is absent or not a JSON object.

    :class:`RefusedReplay` when it is not a regular file (a link, a FIFO): never followed,
    never waited on.
    """
    try:
        manifest = json.loads(read_regular(folder / MANIFEST_FILE).decode("utf-8"))
    except NotRegularFile as error:
        raise RefusedReplay(str(error)) from None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _required(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise RefusedReplay(f"it has no {name}")
    return path


def _check_manifest(folder: Path, expected: Expected) -> str:
    """Who produced the published trial, once its manifest holds exactly this key."""
    _required(folder, MANIFEST_FILE)
    manifest = read_manifest(folder)
    if manifest is None:
        raise RefusedReplay(f"{MANIFEST_FILE} is not a JSON object")
    if manifest.get("key") != expected.key:
        raise RefusedReplay(f"{MANIFEST_FILE} does not name key {expected.key}")
    stored, material = manifest.get("material"), as_stored(expected.material)
    if stored != material:
        stored = stored if isinstance(stored, dict) else {}
        differ = sorted(k for k in set(material) | set(stored) if stored.get(k) != material.get(k))
        raise RefusedReplay(f"{MANIFEST_FILE} holds other key material ({', '.join(differ)})")
    return str(manifest.get("produced_by", ""))


def _check_config(folder: Path, expected: Expected) -> None:
    try:
        config = yaml.safe_load(_required(folder, CONFIG_FILE).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise RefusedReplay(f"{CONFIG_FILE} is not YAML") from None
    if config != as_stored(expected.config):
        raise RefusedReplay(f"{CONFIG_FILE} is not this trial's configuration")


def read_reports(folder: Path) -> list[dict[str, Any]]:
    text = (folder / REPORTS_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_reports(folder: Path, reports: list[dict[str, Any]]) -> None:
    """Every epoch's report, one JSON object a line (values that are not JSON: as text)."""
    lines = [json.dumps(report, default=str) for report in reports]
    (folder / REPORTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_reports(folder: Path, expected: Expected) -> list[dict[str, Any]]:
    _required(folder, REPORTS_FILE)
    try:
        reports = read_reports(folder)
    except (ValueError, UnicodeDecodeError):
        raise RefusedReplay(f"{REPORTS_FILE} is not JSON lines") from None
    if not reports or not all(isinstance(r, dict) for r in reports):
        raise RefusedReplay(f"{REPORTS_FILE} holds no epoch reports")
    epochs = [r.get("epoch") for r in reports]
    numbers = [float(e) for e in epochs if isinstance(e, int | float)]
    rising = len(numbers) == len(epochs) and all(np.diff(numbers) > 0)
    if not rising or epochs[-1] != expected.epochs:
        raise RefusedReplay(
            f"{REPORTS_FILE}'s epochs ({epochs[0]} .. {epochs[-1]}) do not rise to this "
            f"trial's last ({expected.epochs})"
        )
    return reports


def _check_assignments(folder: Path, expected: Expected, last: dict[str, Any]) -> None:
    try:
        assignments = np.load(_required(folder, ASSIGNMENTS_FILE), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise RefusedReplay(f"{ASSIGNMENTS_FILE} is not a plain numpy array") from None
    if assignments.dtype.kind not in "iu" or assignments.ndim != 1:
        raise RefusedReplay(
            f"{ASSIGNMENTS_FILE} holds {assignments.dtype} of shape {assignments.shape}, "
            "not one cluster index per sample"
        )
    if assignments.shape[0] != expected.samples:
        raise RefusedReplay(
            f"{ASSIGNMENTS_FILE} has {assignments.shape[0]} entries; this trial's data set has "
            f"{expected.samples} samples"
        )
    scores = expected.scores(assignments)
    for name in SCORES:
        reported = last.get(name)
        if not isinstance(reported, int | float) or not math.isclose(
            float(reported), scores[name], rel_tol=0, abs_tol=1e-9
        ):
            raise RefusedReplay(
                f"its last report gives {name} {reported}, its assignments score "
                f"{scores[name]:.6g} on this data"
            )


def _check_state(folder: Path, expected: Expected) -> None:
    import torch

    path = _required(folder, STATE_FILE)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any bytes at all may sit there: whatever torch.load raises, refuse
        raise RefusedReplay(f"{STATE_FILE} is not a checkpoint of plain tensors and data") from None
    if not isinstance(state, dict) or state.get("method") != expected.method:
        raise RefusedReplay(f"{STATE_FILE} is not a checkpoint of method {expected.method!r}")
    if state.get("owner") != expected.key:
        raise RefusedReplay(
            f"{STATE_FILE} was written by the trial of key {state.get('owner')}, not this one"
        )
    if state.get("epoch") != expected.epochs:
        raise RefusedReplay(
            f"{STATE_FILE} is at epoch {state.get('epoch')}, not at {expected.epochs}"
        )


def check_published(folder: Path, expected: Expected) -> CheckedTrial:
    """A copied published trial that passed every check; :class:`RefusedReplay` if not."""
    produced_by = _check_manifest(folder, expected)
    _check_config(folder, expected)
    reports = _check_reports(folder, expected)
    _check_assignments(folder, expected, reports[-1])
    _check_state(folder, expected)
    return CheckedTrial(reports, produced_by)
