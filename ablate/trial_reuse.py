"""Finished trials, kept by their key, so that no study trains one twice.

A finished trial is published under its key (:mod:`ablate.trial_keys`) in
``<run.trial_store>/<key>/`` (default ``<run.storage>/trials``): its final checkpoint, which
holds its epoch reports, assignments and config. A later trial with the same key, in any
study that shares the store, replays those reports instead of training (its MLflow run is
tagged ``ablate.reused_from``), after :mod:`ablate.replay_checks` found the folder to be this
trial's; one that starts while another trains the key waits for it, through the claims of
:class:`~ablate.keyed_store.KeyedStore`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from ablate.keyed_store import MANIFEST_FILE, Claimed, KeyedStore, Published
from ablate.planner import TrialSpec
from ablate.replay_checks import (
    CONFIG_FILE,
    REPORTS_FILE,
    Expected,
    RefusedReplay,
    check_published,
    copy_published,
)
from ablate.study import RunSettings
from ablate.trial_keys import (
    data_arguments,
    trial_data_identity,
    trial_device,
    trial_material,
    trial_store_root,
)

if TYPE_CHECKING:
    from trainables.data_identity import DataIdentity

#: How a trial's results leave it: ``report(metrics, checkpoint_folder_or_None)``.
Reporter = Callable[[dict[str, Any], str | None], None]


def is_final(checkpoint: Path) -> bool:
    """Whether a checkpoint is a finished trial's (only the last epoch's holds its config)."""
    return (checkpoint / CONFIG_FILE).exists() and (checkpoint / REPORTS_FILE).exists()


def open_store(run: RunSettings, trial: str) -> KeyedStore | None:
    """The study's store of finished trials, unless ``run.reuse_trials`` is off."""
    if not run.reuse_trials:
        return None
    return KeyedStore(trial_store_root(run), {}, owner=trial)


@dataclass
class TrialReuse:
    """One trial's dealings with the trial store: replay its key, or train and publish it.

    Used as a context manager: leaving it releases a claim the trial did not publish (it
    failed or stopped), so another trial may train the key. Without a store (reuse off)
    nothing replays and nothing is published.
    """

    store: KeyedStore | None
    material: dict[str, Any] = field(default_factory=dict)
    expected: Expected | None = None
    resuming: bool = False
    notes: dict[str, str] = field(default_factory=dict)  # said in the trial's first report

    @classmethod
    def open(
        cls, spec: TrialSpec, run: RunSettings, config: dict[str, Any], resuming: bool
    ) -> TrialReuse:
        """The trial's reuse; computes the key (a TrialConfigError fails this trial alone).

        Whether or not a store is used, the trial's first report names the data it reads
        (:func:`data_notes`), so every MLflow run records it.
        """
        data = trial_data_identity(spec, run, download=True)
        notes = data_notes(spec, run, data)
        store = open_store(run, f"{spec.study}/{spec.key}")
        if store is None:
            return cls(None, notes=notes)
        device = trial_device(run, float(config.get("gpus", 0)))
        material = trial_material(spec, run, int(config.get("workers", 1)), device, data)
        expected = _expected(spec, run, store, material, data.samples)
        return cls(store, material, expected, resuming, notes)

    def __enter__(self) -> TrialReuse:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.store is not None:
            self.store.release(self.material)  # no-op after a publish

    def replay(self, report: Reporter) -> bool:
        """Replay the published trial of this key through ``report``; False to train instead.

        A trial that another live trial is training waits for it. A resumed trial never
        waits (it has epochs on record already): it trains on, and publishes if it gets the
        claim. A published folder that fails a check is set aside, said in :attr:`notes`,
        and the trial trains.
        """
        if self.store is None or self.expected is None:
            return False
        look = self.store.look(self.material) if self.resuming else self.store.wait(self.material)
        if not isinstance(look, Published):
            return False
        try:
            _checked_replay(look.folder, self.expected, self._noting(report))
            return True
        except RefusedReplay as refusal:
            moved = _set_aside(self.store, look.folder)
            where = f"moved to {moved}" if moved else "left in place"
            self.notes["reuse_refused"] = (
                f"trial store folder {look.folder} refused ({refusal}): trained instead; {where}"
            )
            return False

    def _noting(self, report: Reporter) -> Reporter:
        """``report``, whose first report also carries :attr:`notes`."""
        pending = dict(self.notes)

        def first_with_notes(metrics: dict[str, Any], folder: str | None) -> None:
            report({**metrics, **pending}, folder)
            pending.clear()

        return first_with_notes

    def for_training(self, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's config with this reuse's notes (the loop reports them once) and key.

        The key goes into every checkpoint's ``state.pt`` (``owner``), which a later replay
        checks: a trial's genuine folder copied under another key is refused.
        """
        out = {**config, "notes": {**(config.get("notes") or {}), **self.notes}}
        if self.expected is not None:
            out["trial_key"] = self.expected.key
        return out

    def publishing(self, report: Reporter) -> Reporter:
        """``report``, which first publishes the final checkpoint (before Tune moves it away)."""

        def publish_then_report(metrics: dict[str, Any], folder: str | None) -> None:
            if folder is not None:
                self.publish_final(Path(folder))
            report(metrics, folder)

        return publish_then_report

    def publish_final(self, checkpoint: Path) -> None:
        """Keep a finished trial's final checkpoint under its key (once; the claim holder's)."""
        if self.store is None or not is_final(checkpoint):
            return
        if isinstance(self.store.look(self.material), Claimed):  # not published, and ours
            self.store.publish(self.material, checkpoint)


def data_notes(spec: TrialSpec, run: RunSettings, data: DataIdentity) -> dict[str, str]:
    """What a trial's run records of its data: its identity and the root it was read from.

    Reports then refuse to pool runs of one data set label whose data differ
    (:func:`analysis.loading.check_one_data_per_label`).
    """
    from trainables.datasets import default_data_root

    root = data_arguments(spec, run)["root"] or default_data_root()
    return {"data_sha256": data.sha256, "data_root": str(Path(root).resolve())}


#: How ``ablate.reused_from`` marks its value: the manifest's word, which nobody can check.
CLAIM = " (publisher's claim)"


def _replay(reports: list[dict[str, Any]], folder: Path, producer: str, report: Reporter) -> None:
    """Report a published trial's epochs as this trial's, the last with its checkpoint.

    ``reused_from`` names the trial the folder's manifest says produced it, marked as that
    publisher's claim: whoever can write the store can write any name there.
    """
    origin = producer + CLAIM
    for metrics in reports[:-1]:
        report({**metrics, "reused_from": origin}, None)
    report({**reports[-1], "reused_from": origin}, str(folder))


def _checked_replay(found: Path, expected: Expected, report: Reporter) -> None:
    """Replay the published trial in ``found`` after checking a private copy of it.

    :class:`RefusedReplay` (nothing reported) when the copy fails a check.
    """
    with tempfile.TemporaryDirectory() as copy:
        copy_published(found, Path(copy))
        published = check_published(Path(copy), expected)
        (Path(copy) / MANIFEST_FILE).unlink()  # the store's record, not the trial's checkpoint
        _replay(published.reports, Path(copy), published.produced_by, report)


def _expected(
    spec: TrialSpec, run: RunSettings, store: KeyedStore, material: dict[str, Any], samples: int
) -> Expected:
    """What this trial would have produced, to check a published trial against."""

    def scores(assignments: np.ndarray) -> dict[str, float]:
        from trainables.datasets import read_source
        from trainables.metrics import clustering_scores

        source = read_source(**data_arguments(spec, run))
        return clustering_scores(assignments, source.labels, source.info.num_classes)

    return Expected(
        key=store.key(material),
        material=material,
        config=spec.method_config().model_dump(mode="json"),
        method=spec.method,
        epochs=spec.total_epochs(),
        samples=samples,
        scores=scores,
    )


def _set_aside(store: KeyedStore, found: Path) -> Path | None:
    """Move a refused published folder out of the key's way; None if it cannot be moved."""
    target = store.root / ".refused" / f"{found.name}.{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        found.rename(target)
    except OSError:
        return None
    return target
