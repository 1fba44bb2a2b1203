"""A study stopped by a signal stops as Ctrl-C stops it, and says which signal it was.

``timeout`` and ``kill -TERM -PGID`` send SIGTERM to every process of the driver's group
(``timeout``: to the driver, then to its group); a closed terminal sends SIGHUP. Ray's own
processes live in a session of their own (:mod:`ablate.ray_session`), so only the driver gets
such a signal, and it stops the study for them: while a study runs, SIGTERM and SIGHUP are
handed to whatever answers SIGINT at that moment (Tune's own handler during a fit: trials
stop, their state is saved, the study can resume), and the driver exits with 128 + the
signal's number, as a shell reports a process the signal killed. A repeated SIGTERM or SIGHUP
(the group's copy of the first) is ignored while the study stops; a second Ctrl-C skips the
orderly stop, as Tune's own handler says. Senders that signal every process of a cgroup reach
Ray's processes too, whatever their session: give the driver the signal first (systemd's
``KillMode=mixed``; Slurm's ``--signal=B:TERM@120`` before its time limit).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

#: The signals handled as an interrupt, besides SIGINT itself.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@dataclass
class Stops:
    """The stop signals a study received, in order."""

    signals: list[int] = field(default_factory=list)
    #: our SIGINT handler while it is installed; None where handlers cannot be set
    ours: Callable[[int, FrameType | None], None] | None = None

    @property
    def any(self) -> bool:
        return bool(self.signals)

    def after_fit(self) -> bool | None:
        """Whether a stop came, once a Tune fit has returned; None where it cannot be told.

        Tune answers the first SIGINT of a fit itself and then puts back the handler it
        found - ours - so ours being in place again means a Ctrl-C stopped the fit.
        """
        if self.ours is None:
            return None
        if not self.signals and _tune_answers_sigint():
            if signal.getsignal(signal.SIGINT) is self.ours:
                self.signals.append(signal.SIGINT)
        return self.any


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[Stops]:
    """Within the block, SIGTERM and SIGHUP act as SIGINT; yields the signals received.

    Only the main thread may set handlers: elsewhere (a test's thread) nothing changes.
    """
    stops = Stops()

    def as_interrupt(number: int, frame: FrameType | None) -> None:
        if stops.any:  # the group's copy, or an impatient sender: the study stops already
            stops.signals.append(number)
            return
        stops.signals.append(number)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    def second_interrupt(number: int, frame: FrameType | None) -> None:
        stops.signals.append(number)
        raise KeyboardInterrupt

    try:
        previous = {number: signal.signal(number, as_interrupt) for number in STOP_SIGNALS}
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, second_interrupt)
    except ValueError:  # not the main thread
        yield stops
        return
    stops.ours = second_interrupt
    try:
        yield stops
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _tune_answers_sigint() -> bool:
    """Whether a fit replaces our SIGINT handler (unless told not to, Tune does)."""
    return not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") or 0)


def exit_status(signals: list[int]) -> int:
    """128 + the first stop signal received; 130 (SIGINT's) when none came."""
    return 128 + int(signals[0] if signals else signal.SIGINT)
