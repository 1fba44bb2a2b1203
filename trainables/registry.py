"""Method registry: one decorator line per method module, as timm registers models.

``registered_methods()`` imports, once, every module of the ``trainables`` package whose
source carries the decorator, so the list of methods is whatever modules declare with
``@register_method`` - never a hand-kept list. Building-block modules (which import torch)
are skipped, and method modules load without torch (see :mod:`trainables.lazy`), so listing
methods and validating configs stays fast.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trainables.config import MethodConfig

if TYPE_CHECKING:
    from trainables.method import Method

DECORATOR = "@register_method("
#: Modules outside this package that register methods (comma-separated), imported with ours:
#: a lab's own method, or the tests' synthetic one. Ray workers inherit it from the driver.
MODULES_ENV = "ABLATE_METHOD_MODULES"
_REGISTRY: dict[str, type[Method[Any]]] = {}
_DISCOVERED = False

M = TypeVar("M", bound="type[Method[Any]]")


class UnknownMethodError(KeyError):
    """A method name that no module registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown method {self.name!r}; registered methods: {', '.join(self.known)}"


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: register a method under ``name``.

    Raises on a duplicate name (a later import must never replace a method silently) and on a
    class whose ``config_class`` is not a :class:`MethodConfig` subclass.
    """

    def decorate(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(
                f"method name {name!r} is registered twice: by {_REGISTRY[name].__module__} "
                f"and by {cls.__module__}"
            )
        config_class = getattr(cls, "config_class", None)
        if not (isinstance(config_class, type) and issubclass(config_class, MethodConfig)):
            raise TypeError(
                f"method {name!r} ({cls.__qualname__}) must set config_class to a MethodConfig "
                f"subclass; got {config_class!r}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    import trainables

    for info in pkgutil.iter_modules(trainables.__path__):
        source = Path(info.module_finder.path) / f"{info.name}.py"  # type: ignore[union-attr]
        if source.exists() and DECORATOR in source.read_text(encoding="utf-8"):
            importlib.import_module(f"trainables.{info.name}")
    for module in os.environ.get(MODULES_ENV, "").split(","):
        if module.strip():
            try:
                importlib.import_module(module.strip())
            except ImportError as error:
                raise ImportError(
                    f"{MODULES_ENV} names {module.strip()!r}, which cannot be imported: {error}"
                ) from None
    _DISCOVERED = True


def registered_methods() -> dict[str, type[Method[Any]]]:
    """All registered methods by name, sorted."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> type[Method[Any]]:
    """The method class registered as ``name``; :class:`UnknownMethodError` otherwise."""
    methods = registered_methods()
    if name not in methods:
        raise UnknownMethodError(name, list(methods))
    return methods[name]
