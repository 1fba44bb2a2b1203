"""Where a study stands: each trial's epoch, loss, metric, throughput and ETA, and the study's.

:class:`StudyProgress` is fed events (a trial started, reported an epoch, finished, failed),
from Tune's callbacks during ``ablate run`` or from MLflow's records in ``ablate status``, and
answers with plain text rows. Time comes from a clock passed in, so the ETA arithmetic is
tested with a fake one. Rendering is separate: :class:`PlainProgress` (a line per trial at
most every N seconds, for logs and CI) and :class:`LiveProgress` (a ``rich`` table redrawn in
place on a terminal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

Clock = Callable[[], float]


def duration(seconds: float | None) -> str:
    """``42 s``, ``12 min``, ``3.4 h``, ``2.1 d``; ``?`` before anything was measured."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@dataclass
class TrialProgress:
    """One trial as the driver last heard of it."""

    name: str
    total_epochs: int
    started: float
    state: str = "running"  # running, finished, failed
    epoch: int = 0
    stage: str = ""
    loss: float | None = None
    metric: float | None = None
    images_per_s: float | None = None
    peak_memory_mb: float | None = None
    gpu_utilisation: float | None = None
    node: str = ""
    error: str = ""
    last_report: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)  # wall clock, evaluation included
    replayed: bool = False  # a finished trial's epochs, replayed from the trial store

    @property
    def seconds_per_epoch(self) -> float | None:
        if not self.epoch_seconds:
            return None
        recent = self.epoch_seconds[-5:]  # the current stage's pace, not the first epoch's
        return sum(recent) / len(recent)

    def eta_s(self) -> float | None:
        per_epoch = self.seconds_per_epoch
        if per_epoch is None:
            return None
        return max(self.total_epochs - self.epoch, 0) * per_epoch


class StudyProgress:
    """Every trial's progress and the study's ETA from measured epoch times.

    ``planned_epochs`` is the sum of every planned trial's epochs; the ETA divides what is
    left by the trials that run at once (``concurrency``, else the most seen running). A
    replayed trial (its report carries ``reused_from``) costs nothing: neither its instant
    epochs enter the pace nor its epochs the work left, nor do those of the trials expected
    to replay (``replays``: epochs by trial name, known before they start).
    """

    def __init__(
        self,
        total_trials: int,
        planned_epochs: int,
        metric: str,
        mode: str,
        concurrency: int | None = None,
        clock: Clock = time.monotonic,
        replays: dict[str, int] | None = None,
    ) -> None:
        self.total_trials, self.planned_epochs = total_trials, planned_epochs
        self.replays = dict(replays or {})
        self.metric, self.mode = metric, mode
        self.concurrency = concurrency
        self.clock = clock
        self.trials: dict[str, TrialProgress] = {}
        self._most_running = 0

    # -- events -----------------------------------------------------------------------------
    def start(self, name: str, total_epochs: int, at: float | None = None) -> TrialProgress:
        trial = self.trials.get(name)
        now = self.clock() if at is None else at
        if trial is None:
            trial = self.trials[name] = TrialProgress(name, total_epochs, started=now)
        trial.state, trial.error = "running", ""  # also a retry after a failure
        trial.last_report = now
        self._most_running = max(self._most_running, len(self.running))
        return trial

    def report(self, name: str, result: dict[str, Any], at: float | None = None) -> TrialProgress:
        trial = self.trials.get(name) or self.start(name, int(result.get("total_epochs", 0)), at)
        now = self.clock() if at is None else at
        epoch = int(result.get("epoch", trial.epoch))
        trial.replayed = trial.replayed or "reused_from" in result
        if trial.last_report is not None and epoch > trial.epoch and not trial.replayed:
            trial.epoch_seconds.append((now - trial.last_report) / (epoch - trial.epoch))
        trial.epoch, trial.last_report = epoch, now
        trial.stage = str(result.get("stage_name", trial.stage))
        trial.loss = _number(result.get("loss"), trial.loss)
        trial.metric = _number(result.get(self.metric), trial.metric)
        trial.images_per_s = _number(result.get("images_per_s"), trial.images_per_s)
        trial.peak_memory_mb = _number(result.get("peak_memory_mb"), trial.peak_memory_mb)
        trial.gpu_utilisation = _number(result.get("gpu_utilisation"), trial.gpu_utilisation)
        trial.node = str(result.get("node", trial.node))
        return trial

    def finish(self, name: str) -> TrialProgress:
        trial = self.trials[name]
        trial.state = "finished"
        return trial

    def fail(self, name: str, error: str) -> TrialProgress:
        trial = self.trials[name]
        trial.state, trial.error = "failed", error
        return trial

    # -- answers ----------------------------------------------------------------------------
    @property
    def running(self) -> list[TrialProgress]:
        return [t for t in self.trials.values() if t.state == "running"]

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials.values())

    def best(self) -> TrialProgress | None:
        scored = [t for t in self.trials.values() if t.metric is not None]
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda t: t.metric)  # type: ignore[arg-type,return-value]

    def eta_s(self) -> float | None:
        """Seconds until the last trial ends, at the measured pace; None before any epoch."""
        trained = [t for t in self.trials.values() if not t.replayed]
        paces = [t.seconds_per_epoch for t in trained if t.seconds_per_epoch]
        if not paces:
            return None
        done = sum(
            t.total_epochs if t.state in ("finished", "failed") else t.epoch for t in trained
        )
        replayed = sum(t.total_epochs for t in self.trials.values() if t.replayed) + sum(
            epochs for name, epochs in self.replays.items() if name not in self.trials
        )
        at_once = self.concurrency or max(self._most_running, 1)
        remaining = max(self.planned_epochs - done - replayed, 0)
        return remaining * (sum(paces) / len(paces)) / at_once

    def study_line(self, eta: bool = True) -> str:
        pending = max(self.total_trials - len(self.trials), 0)
        running = len(self.running)
        line = (
            f"{self.count('finished')}/{self.total_trials} done, {running} running, "
            f"{self.count('failed')} failed, {pending} pending"
        )
        best = self.best()
        if best is not None and best.metric is not None:
            line += f"; best {self.metric} {best.metric:.3f} ({best.name})"
        if eta and (running or pending):
            line += f"; study ETA {duration(self.eta_s())}"
        return line

    def trial_cells(self, trial: TrialProgress) -> list[str]:
        """Name, stage, epoch/total, loss, metric, images/s, memory, ETA (state when ended)."""
        return [
            trial.name,
            trial.stage or "-",
            f"{trial.epoch}/{trial.total_epochs}",
            _fixed(trial.loss, 4),
            _fixed(trial.metric, 3),
            _fixed(trial.images_per_s, 1),
            _memory(trial),
            duration(trial.eta_s()) if trial.state == "running" else trial.state,
        ]

    @property
    def headers(self) -> list[str]:
        return ["trial", "stage", "epoch", "loss", self.metric, "img/s", "memory", "ETA"]

    def trial_line(self, trial: TrialProgress) -> str:
        name, stage, epoch, loss, metric, speed, memory, eta = self.trial_cells(trial)
        return (
            f"{name}: {stage} epoch {epoch}, loss {loss}, {self.metric} {metric}, "
            f"{speed} images/s, {memory}, ETA {eta}"
        )


def _number(value: Any, default: float | None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _memory(trial: TrialProgress) -> str:
    """Peak memory, and the GPU's busy share where NVML reported one."""
    if trial.peak_memory_mb is None:
        return "-"
    text = f"{trial.peak_memory_mb:.0f} MiB"
    if trial.gpu_utilisation is not None:
        text += f", GPU {trial.gpu_utilisation:.0f} %"
    return text


def _fixed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class PlainProgress:
    """For logs (CI, ``ray job logs``): a line a trial at most every ``every_s`` seconds.

    Start, finish and failure lines are written at once; a trial's first and last epochs
    always.
    """

    def __init__(self, progress: StudyProgress, write: Callable[[str], None], every_s: float):
        self.progress, self.write, self.every_s = progress, write, every_s
        self._last_line: dict[str, float] = {}

    def event(self, text: str) -> None:
        self.write(f"[{self.progress.study_line()}] {text}")

    def epoch(self, trial: TrialProgress) -> None:
        now = self.progress.clock()
        last = self._last_line.get(trial.name)
        final = trial.epoch >= trial.total_epochs
        if last is not None and now - last < self.every_s and not final:
            return
        self._last_line[trial.name] = now
        self.write(f"  {self.progress.trial_line(trial)}")

    def close(self) -> None:
        """Nothing to tear down: every line is already written."""


class LiveProgress:
    """For a terminal: one ``rich`` table redrawn in place.

    A row per running trial under the study line; start, finish and failure lines scroll
    above it.
    """

    def __init__(self, progress: StudyProgress, stream: TextIO, refresh_per_second: float = 2):
        from rich.console import Console
        from rich.live import Live

        self.progress = progress
        self.console = Console(file=stream)
        self.live = Live(
            self._table(),
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=True,
        )
        self.live.start()

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self.progress.study_line(), title_justify="left", expand=False)
        for header in self.progress.headers:
            table.add_column(header, justify="left" if header in ("trial", "stage") else "right")
        for trial in self.progress.running:
            table.add_row(*self.progress.trial_cells(trial))
        return table

    def event(self, text: str) -> None:
        self.console.print(f"[{self.progress.study_line()}] {text}", markup=False, highlight=False)
        self.live.update(self._table(), refresh=True)

    def epoch(self, trial: TrialProgress) -> None:
        self.live.update(self._table(), refresh=True)

    def close(self) -> None:
        self.live.stop()
