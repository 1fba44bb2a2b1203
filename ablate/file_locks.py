"""File locks as ablate uses them: what an error means, and whether a lock reaches other hosts.

Drivers (``fcntl.lockf``), shared-stage and trial claims (``fcntl.flock``) rely on the kernel's
locks. Only "another process holds it" (``EAGAIN``, ``EACCES``, ``EWOULDBLOCK``) is a normal
answer; any other error (``ENOLCK`` on a share mounted without a lock manager) means the file
system cannot lock at all, and waiting for such a lock would wait forever. A share mounted
``nolock`` (or ``local_lock=...``) is worse: its locks succeed but hold on this machine only,
so two drivers on two machines both "hold" one; that is warned about before a study starts.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: What a non-blocking lock answers while another process holds it.
HELD = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})


class LockUnsupportedError(OSError):
    """The file system refuses locks; the message names the file and what to do."""


def held_elsewhere(error: OSError, path: Path) -> bool:
    """True when ``error`` means another process holds the lock on ``path``.

    :class:`LockUnsupportedError` for any other lock error.
    """
    if error.errno in HELD:
        return True
    raise LockUnsupportedError(
        f"this file system cannot lock {path} ({error.strerror or error}): put the study's "
        "storage on a local disk or an NFS share mounted with its lock manager (without nolock)"
    ) from None


def local_lock_warning(path: Path, mounts: str | None = None) -> str | None:
    """A warning when ``path`` lies on a network mount whose locks are local to this host.

    ``mounts``: the text of ``/proc/mounts`` (read when None; no warning where it is absent).
    """
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text(encoding="utf-8")
        except OSError:
            return None
    target = os.path.realpath(path)
    best: tuple[str, str, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[0])):
            best = (point, fields[2], fields[3])
    if best is None:
        return None
    point, kind, options = best
    flags = options.split(",")
    local = [f for f in flags if f == "nolock" or f.startswith("local_lock=")]
    local = [f for f in local if f != "local_lock=none"]
    if not local or not kind.startswith("nfs"):
        return None
    return (
        f"warning: {path} is on {kind} mount {point} with {','.join(local)}: its locks hold on "
        "this machine only, so a driver or trial on another machine does not see them (two "
        "drivers of one study, or two trials of one key, would both run); mount it without "
        "nolock/local_lock, or run every driver and trial of a study on this machine"
    )
