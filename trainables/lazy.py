"""Deferred imports, so that method modules (and their configs) load without torch.

`ablate validate`, `ablate methods` and `--help` read method configs; importing torch, faiss
or Ray for them would cost seconds. Method modules therefore bind heavy modules through
:func:`lazy`, behind an ``if TYPE_CHECKING`` import that keeps type checking exact.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """A stand-in that imports the named module on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str) -> Any:
    """Return a proxy for module ``name`` that imports it when first used."""
    return LazyModule(name)
