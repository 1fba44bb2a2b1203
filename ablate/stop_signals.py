"""A study stopped by a signal stops as Ctrl-C stops it, and says which signal it was.

A batch scheduler, ``timeout`` and ``systemctl stop`` send SIGTERM; a closed terminal sends
SIGHUP. Left to Ray, SIGTERM ends the driver with a stack dump (exit 134) and no state saved.
While a study runs, both are handed to whatever answers SIGINT at that moment (Tune's own
handler during a fit: trials stop, their state is saved, the study can resume), and the
driver exits with 128 + the signal's number, as a shell reports a process the signal killed.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

#: The signals handled as an interrupt, besides SIGINT itself.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[list[int]]:
    """Within the block, SIGTERM and SIGHUP act as SIGINT; yields the signals received.

    Only the main thread may set handlers: elsewhere (a test's thread) nothing changes.
    """
    received: list[int] = []

    def as_interrupt(number: int, frame: FrameType | None) -> None:
        received.append(number)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    try:
        previous = {number: signal.signal(number, as_interrupt) for number in STOP_SIGNALS}
    except ValueError:  # not the main thread
        yield received
        return
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def exit_status(received: list[int]) -> int:
    """128 + the first stop signal received; 130 (SIGINT's) when none came."""
    return 128 + int(received[0] if received else signal.SIGINT)
