"""What ``plan`` and ``run`` say before launch about trials that will not train.

A trial whose key the trial store holds replays it (:mod:`ablate.trial_reuse`), and two
trials of one study with the same key train once. Counting them before launch gives the
study's true cost and an ETA that skips their epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ablate.keyed_store import KeyedStore
from ablate.planner import epochs_or_zero, expand, trial_count
from ablate.replay_checks import RefusedReplay, as_stored, read_manifest
from ablate.store_trust import exposure_lines
from ablate.trial_keys import trial_keys, trial_store_root
from ablate.wording import count


@dataclass
class Replayed:
    """The trials (by name) of a study that will not train: their key is trained already."""

    done: list[str] = field(default_factory=list)  # published in the trial store
    repeats: list[str] = field(default_factory=list)  # an earlier trial's key, in this study
    unknown: list[str] = field(default_factory=list)  # data sets not readable here
    #: trials whose published folder is refused unread (a link or FIFO for its manifest)
    refused: dict[str, str] = field(default_factory=dict)
    #: warnings: the store, or a folder to replay, that others may write
    exposed: list[str] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {*self.done, *self.repeats}


def replayed(study: Any) -> Replayed:
    """Which trials replay instead of training, as far as the driver can tell before launch.

    A published folder counts when its manifest holds the trial's key material; the trial
    checks the rest (:mod:`ablate.replay_checks`) before it replays.
    """
    if not study.run.reuse_trials:
        return Replayed()
    store = KeyedStore(trial_store_root(study.run), {})  # the context trials open it with
    keys = trial_keys(study)
    found, seen = Replayed(unknown=keys.unknown), set()
    done_keys = []
    for name, material in keys.materials.items():  # in the study's order: the first trains
        key = store.key(material)
        try:
            manifest = read_manifest(store.root / key)
        except RefusedReplay as refusal:
            found.refused[name] = f"trial store folder {store.root / key} refused ({refusal})"
            manifest = None
        if manifest is not None and manifest.get("material") == as_stored(material):
            found.done.append(name)
            done_keys.append(key)
        elif key in seen:
            found.repeats.append(name)
        seen.add(key)
    folders = [store.root / key for key in dict.fromkeys(done_keys)]
    found.exposed = exposure_lines("trial store", [store.root, *folders])
    return found


def replay_epochs(study: Any, found: Replayed) -> dict[str, int]:
    """The epochs of each trial expected to replay (by name): work the study's ETA skips."""
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
    total = trial_count(study)
    lines = []
    if found.done:
        lines.append(
            f"{len(found.done)} of {count(total, 'trial')} done already (in "
            "the trial store, by this or another study): replayed, not trained"
        )
    for label in found.unknown:
        lines.append(
            f"data set {label} is not readable here: trials done already on it are not counted "
            "(each trial still looks itself up where it runs)"
        )
    lines += found.exposed
    for name, reason in found.refused.items():
        lines.append(f"warning: {name}: {reason}: counted as to train")
    return lines + same_configuration_lines(study)


def plan_summary(study: Any) -> str:
    """What ``ablate plan`` ends with: trials done already, and the GPU-hours left to train."""
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
