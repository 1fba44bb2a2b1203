"""Records written in order to a store that may be down: retried, else kept on disk.

MLflow's store (SQLite on a shared disk, or a server) can be locked or unreachable for a
while. A study must not stop for it, and must not lose a record: each write is retried with
backoff, and one that still fails waits, with every record after it, in a JSON-lines file in
the study's storage. The first write that succeeds again (later in this run, or at the next
``ablate run``) writes them all, in order. The records' writes must be idempotent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Seconds between tries of a failing write before its record is kept. MLflow's SQLite
#: sessions themselves wait up to 20 s for a lock at each try, so a locked database stalls
#: the driver about a minute before its records are kept; a server that refuses
#: connections, 5 s.
RETRY_WAITS = (1.0, 4.0)
#: While the store is down, seconds between attempts to write the backlog (each attempt may
#: wait for SQLite's lock, so not at every epoch of every trial).
COOLDOWN_S = 20.0


def plain(value: Any) -> Any:
    """JSON for a backlog line: numbers stay numbers, anything else becomes text."""
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class WriteBehind:
    """Applies records in order through ``apply``; keeps those the store refuses in ``file``."""

    def __init__(
        self,
        apply: Callable[[dict[str, Any]], None],
        file: Path | None,
        store: str,
        printer: Callable[[str], None] = print,
    ) -> None:
        self.apply, self.file, self.store, self.printer = apply, file, store, printer
        self.backlog: list[dict[str, Any]] = []
        self._warned = False
        self._retry_at = 0.0

    def load(self, keep: Callable[[dict[str, Any]], bool] = lambda record: True) -> None:
        """Take up the records an earlier run left on disk (those ``keep`` accepts)."""
        if self.file is None or not self.file.exists():
            return
        lines = self.file.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        self.backlog = [r for r in records if keep(r)]
        if len(self.backlog) != len(records):
            self._save()

    def write(self, record: dict[str, Any]) -> None:
        """Write ``record`` after any kept before it; keep it if the store refuses.

        An interrupt (a second Ctrl-C, a signal handled as one) inside the write keeps the
        record too, then goes on up: a write cut short is written again at the next run (the
        writes are idempotent), never lost with the interrupt.
        """
        if self.backlog and time.monotonic() >= self._retry_at:
            self.flush()
            if self.backlog:
                self._retry_at = time.monotonic() + COOLDOWN_S
        if not self.backlog:
            try:
                self._with_retries(lambda: self.apply(record))
                return
            except Exception as error:  # noqa: BLE001 - any store fault: keep the record
                self._retry_at = time.monotonic() + COOLDOWN_S
                self._warn(error)
            except BaseException:  # KeyboardInterrupt, SystemExit: keep it, then stop
                self._keep(record)
                raise
        self._keep(record)

    def _keep(self, record: dict[str, Any]) -> None:
        self.backlog.append(plain(record))
        self._save()

    def flush(self, patient: bool = False) -> None:
        """Write the backlog in order; stop at the first record the store still refuses."""
        while self.backlog:
            try:
                if patient:
                    self._with_retries(lambda: self.apply(self.backlog[0]))
                else:
                    self.apply(self.backlog[0])
            except Exception:
                break
            self.backlog.pop(0)
            self._save()
        if not self.backlog and self._warned:
            self.printer(f"MLflow at {self.store} is back: the buffered records are written")
            self._warned = False

    def _warn(self, error: Exception) -> None:
        if self._warned:
            return
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        self.printer(
            f"warning: MLflow at {self.store} failed ({type(error).__name__}: {first}); the "
            "trials go on and their records are kept until it answers again"
        )
        self._warned = True

    @staticmethod
    def _with_retries(write: Callable[[], None]) -> None:
        for wait in (*RETRY_WAITS, None):
            try:
                write()
                return
            except Exception:
                if wait is None:
                    raise
                time.sleep(wait)

    def _save(self) -> None:
        if self.file is None:
            return
        if not self.backlog:
            self.file.unlink(missing_ok=True)
            return
        partial = self.file.with_suffix(".partial")
        partial.write_text("".join(json.dumps(e) + "\n" for e in self.backlog), encoding="utf-8")
        partial.replace(self.file)
