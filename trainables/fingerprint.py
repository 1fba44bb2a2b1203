"""A fingerprint of the code that trains a method: its module and every toolkit module it uses.

A finished stage (and, later, a finished trial) may only be reused by a trial that would have
computed the same thing. Settings do not say that alone: a fixed loss, a changed augmentation
or loop would still find the old result under the old key. So the key also holds the SHA-256
of the source of the method's module and of the ``trainables`` modules it imports, directly
or through others (found by reading the imports, lazy ones included), plus the loop's. An
edit to any of them is a new key; an edit to another method's module is not.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

PACKAGE = "trainables"
#: Modules every trial runs through, whatever the method imports.
ALWAYS = ("loop", "method")


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def read_module(name: str) -> str | None:
    """The source of ``trainables.<name>``, or None if it is not a module of the package."""
    path = _package_dir() / f"{name}.py"
    return path.read_text(encoding="utf-8") if path.exists() else None


def imported_modules(source: str) -> set[str]:
    """Names of the ``trainables`` modules a source imports, eagerly or through ``lazy(...)``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found.update(alias.name for alias in node.names)
            elif node.module.startswith(f"{PACKAGE}."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith(f"{PACKAGE}.")
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = node.value.split(".")
            if len(parts) == 2 and parts[0] == PACKAGE and parts[1].isidentifier():
                found.add(parts[1])  # lazy("trainables.losses")
    return found


def module_closure(start: str, read: Callable[[str], str | None] = read_module) -> dict[str, str]:
    """``{module: source}`` for ``start``, the loop, and everything they import, transitively."""
    sources: dict[str, str] = {}
    pending = [start, *ALWAYS]
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        source = read(name)
        if source is None:
            continue
        sources[name] = source
        pending.extend(imported_modules(source) - set(sources))
    return sources


def code_fingerprint(module: str, read: Callable[[str], str | None] = read_module) -> str:
    """SHA-256 over the sources of :func:`module_closure` (``module``: e.g. ``"nncc"``)."""
    digest = hashlib.sha256()
    for name, source in sorted(module_closure(module, read).items()):
        digest.update(f"{name}\0{source}\0".encode())
    return digest.hexdigest()[:24]


@cache
def method_fingerprint(module: str) -> str:
    """:func:`code_fingerprint` of the installed sources, computed once per process."""
    return code_fingerprint(module)


#: Libraries whose releases can change a trained result: kernels and RNG streams (torch,
#: torchvision), neighbour search (faiss), k-means, metrics and assignment (scikit-learn,
#: scipy, numpy), image decoding and resizing (Pillow).
RESULT_LIBRARIES = (
    "torch",
    "torchvision",
    ("faiss-gpu", "faiss-cpu", "faiss"),
    "scikit-learn",
    "scipy",
    "numpy",
    "pillow",
)


@cache
def library_versions() -> dict[str, str]:
    """The installed release of each of :data:`RESULT_LIBRARIES` (read without importing it)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for entry in RESULT_LIBRARIES:
        names = entry if isinstance(entry, tuple) else (entry,)
        for name in names:
            try:
                found[names[0]] = f"{name} {version(name)}"
                break
            except PackageNotFoundError:
                continue
        else:
            found[names[0]] = "not installed"
    return found
