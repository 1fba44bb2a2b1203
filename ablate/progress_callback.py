"""Tune's trial events, fed to a :class:`~ablate.progress.StudyProgress` and shown.

Tune pickles its callbacks with the study and unpickles them when it resumes, in another
driver with another terminal (or ``--progress-every``). So a callback carries the progress,
never the display: the driver that runs it attaches its own :class:`Display`
(:func:`attach_display`), and a restored callback nobody attached to prints plain lines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback

from ablate.progress import LiveProgress, PlainProgress, StudyProgress

Printer = Callable[[str], None]


def print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Display:
    """How this driver shows progress: a live table (a terminal) or plain lines."""

    live: bool = False
    every_s: float = 30.0  # plain mode: a trial's epoch line at most this often
    printer: Printer = field(default=print_line)


class ProgressCallback(Callback):
    """Feeds Tune's trial events to a :class:`StudyProgress` and shows them on a display.

    On a terminal a live table (``rich``); otherwise plain lines, a trial's at most every
    ``every_s`` seconds. Epoch reports already reach the driver: no channel of its own.
    """

    def __init__(self, progress: StudyProgress, display: Display | None = None) -> None:
        self.progress = progress
        self.display = display or Display()
        self._view: LiveProgress | PlainProgress | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"progress": self.progress}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A resumed study: plain lines until a driver attaches its display; paces afresh."""
        self.progress = state["progress"]
        self.display, self._view = Display(), None
        for trial in self.progress.trials.values():
            trial.last_report = None  # the time between two drivers is no epoch's

    @property
    def view(self) -> LiveProgress | PlainProgress:
        if self._view is None:
            d = self.display
            self._view = (
                LiveProgress(self.progress, sys.stdout)
                if d.live
                else PlainProgress(self.progress, d.printer, d.every_s)
            )
        return self._view

    def close(self) -> None:
        """Stop a live table (a plain view has nothing to stop)."""
        if self._view is not None:
            self._view.close()
            self._view = None

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        from ablate.tracking import trial_spec

        try:
            epochs = trial_spec(trial.config).total_epochs()
        except ValueError:  # an invalid sampled config: the trial fails at once with its reason
            epochs = 0
        self.progress.start(str(trial), epochs)
        self.view.event(f"started {trial}")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if "reuse_refused" in result:  # the trial store held a folder that failed its check
            self.view.event(f"warning: {trial}: {result['reuse_refused']}")
        self.view.epoch(self.progress.report(str(trial), result))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.progress.finish(str(trial))
        self.view.event(f"finished {trial}")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        from ablate.tracking import error_summary

        reason = error_summary(trial)
        self.progress.fail(str(trial), reason)
        self.view.event(f"FAILED {trial}: {reason}")


def attach_display(tuner: Any, display: Display) -> list[ProgressCallback]:
    """Give a restored Tuner's progress callbacks this driver's display; those callbacks.

    Tune offers no public access to a restored run's callbacks (ray-project/ray#41364): this
    reads the one private accessor, and without it the callbacks keep plain lines.
    """
    local = getattr(tuner, "_local_tuner", None)
    run_config = getattr(local, "get_run_config", lambda: None)()
    callbacks = getattr(run_config, "callbacks", None) or []
    found = [c for c in callbacks if isinstance(c, ProgressCallback)]
    for callback in found:
        callback.display = display
    return found
