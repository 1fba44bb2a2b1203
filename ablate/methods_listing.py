"""Text listing of the registered methods for ``ablate methods``, read from their configs."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from trainables.registry import get_method, registered_methods


def field_descriptions(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """``{dotted.key: description}`` for every leaf field of a config model."""
    docs: dict[str, str] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            docs.update(field_descriptions(annotation, f"{prefix}{name}."))
        else:
            docs[f"{prefix}{name}"] = field.description or ""
    return docs


def format_value(value: Any) -> str:
    """A value as a study file would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return "null" if value is None else str(value)


def render_method(name: str) -> str:
    method = get_method(name)
    config_class = method.config_class
    doc = (importlib.import_module(method.__module__).__doc__ or name).strip()
    defaults = config_class().flat()
    docs = field_descriptions(config_class)
    params = [(k, v) for k, v in defaults.items() if not k.startswith("loss.")]
    switches = [(k, v) for k, v in defaults.items() if k.startswith("loss.")]
    width = max(len(f"{k}: {format_value(v)}") for k, v in defaults.items())
    lines = [f"{name} - {doc.splitlines()[0]}", "  hyperparameters (key: default):"]
    lines += [f"    {f'{k}: {format_value(v)}':<{width}}  {docs[k]}".rstrip() for k, v in params]
    lines.append("  loss switches (key: default):")
    lines += [f"    {f'{k}: {format_value(v)}':<{width}}  {docs[k]}".rstrip() for k, v in switches]
    return "\n".join(lines) + "\n"


def render_methods(name: str | None = None) -> str:
    names = [name] if name else list(registered_methods())
    return "\n".join(render_method(n) for n in names)
