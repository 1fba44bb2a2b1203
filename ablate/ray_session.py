"""The local Ray a driver starts lives in a session of its own, out of reach of group signals.

``timeout``, ``kill -TERM -PGID`` and a closed terminal signal every process of the driver's
process group or session. Ray starts its GCS, raylet and dashboard as children of the
driver, in that group: they died of the signal at once, the driver then waited a minute for
the GCS and died without saving the study, leaving its MLflow runs RUNNING. Started in a new
session instead, they hear only the driver, which stops the study in order
(:mod:`ablate.stop_signals`) and then shuts them down; if the driver itself is killed, Ray's
kernel fate-sharing (``PR_SET_PDEATHSIG``) still takes them with it.

Ray 2.60 starts every one of those processes through ``ray._private.services.ConsolePopen``
(a ``subprocess.Popen``); while :func:`ray_in_own_session` is active it adds
``start_new_session=True``. Ray is pinned, and a test checks that Ray's processes are in
another session than the driver's, so a Ray that stops using that class fails the test, not
a user.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def ray_in_own_session() -> Iterator[None]:
    """Within the block, processes Ray starts on this machine begin a new session."""
    from ray._private import services

    original = services.ConsolePopen

    class NewSessionPopen(original):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = NewSessionPopen  # type: ignore[misc]
    try:
        yield
    finally:
        services.ConsolePopen = original  # type: ignore[misc]
