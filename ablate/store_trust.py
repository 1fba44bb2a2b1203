"""Whether people other than the user can write a shared store's folders.

The trial store's numbers are reported as this study's, and its checks stop damaged and naive
folders, not a writer who forges every file (:mod:`ablate.replay_checks`). Write access to the
store is therefore the boundary: a folder that others can write, or that another user owns,
is named before launch, so it is a decision and not an accident of a umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def exposure(path: Path) -> str | None:
    """Why others may write ``path`` (group/others write bits, another owner); None if not."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    reasons = []
    writers = [
        who
        for bit, who in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others"))
        if info.st_mode & bit
    ]
    if writers:
        reasons.append(f"writable by {' and '.join(writers)} (mode {stat.S_IMODE(info.st_mode):o})")
    if info.st_uid != os.getuid():
        reasons.append(f"owned by uid {info.st_uid}, not by you ({os.getuid()})")
    return ", ".join(reasons) or None


def exposure_lines(store: str, folders: list[Path]) -> list[str]:
    """One warning line per folder of ``store`` that others may write."""
    lines = []
    for folder in folders:
        reason = exposure(folder)
        if reason is not None:
            lines.append(
                f"warning: {store} {folder} is {reason}: whoever can write it can plant results "
                "that replay as this study's (chmod 700, or a group you trust: docs/running.md)"
            )
    return lines
