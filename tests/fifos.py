"""Calling code that may open a planted FIFO: a wait on it fails the test instead of hanging
the suite (``open()`` of a FIFO waits for a writer forever)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def without_hanging(call: Callable[[], Any], fifos: list[Path]) -> dict[str, Any]:
    """``{"value": ...}`` or ``{"error": ...}`` of ``call()``; a failure if it waits on one
    of ``fifos`` for 10 s (a writer is then opened on each, to let the reader go)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        for fifo in fifos:  # a writer that opens and leaves lets the blocked reader go
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(5)
        pytest.fail(f"{call} waited on a FIFO")
    return outcome
