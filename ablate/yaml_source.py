"""Safe YAML loading that remembers where each key stands, for errors that name the line.

Study files run no code: the safe loader rejects object tags (``!!python/object`` and the
like). Duplicate keys, which YAML would silently resolve to the last, are errors too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


class StudyFileError(ValueError):
    """A problem with a study file, located by file, key path and line."""

    def __init__(self, file: str, path: KeyPath, line: int | None, message: str) -> None:
        self.file = file
        self.path = path
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = dotted(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


def dotted(path: KeyPath) -> str:
    """A key path as users write it: ``variants.full.loss.cluster``, ``datasets[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus the line of every key path in it."""

    file: str
    data: Any
    lines: dict[KeyPath, int]

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def error(self, path: KeyPath, message: str) -> StudyFileError:
        return StudyFileError(self.file, path, self.line_of(path), message)


#: Bounds on what a study file may expand to: YAML aliases can make a few hundred bytes
#: stand for billions of nodes (an "alias bomb"), or for a structure that contains itself.
MAX_NODES = 100_000
MAX_DEPTH = 64


def _walk(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str, budget: list[int]
) -> None:
    budget[0] -= 1
    if budget[0] < 0 or len(path) > MAX_DEPTH:
        what = (
            f"more than {MAX_NODES:,} values"
            if budget[0] < 0
            else f"more than {MAX_DEPTH} levels of nesting"
        )
        raise StudyFileError(
            file,
            path[:8],
            node.start_mark.line + 1,
            f"the file expands to {what} (YAML aliases that repeat or contain themselves?); "
            "a study is a small mapping",
        )
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise StudyFileError(
                    file,
                    (*path, key),
                    key_node.start_mark.line + 1,
                    "duplicate key (YAML keeps only the last)",
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, file, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, file, budget)


def load_yaml(path: str | Path) -> YamlDocument:
    """Read ``path`` with the safe loader; raise :class:`StudyFileError` on any problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise StudyFileError(
            file, (), None, f"cannot read the study file: {error.strerror}"
        ) from None
    except UnicodeDecodeError as error:
        raise StudyFileError(
            file,
            (),
            None,
            f"not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); "
            "a study file is UTF-8 YAML",
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise StudyFileError(file, (), None, "the file is empty; a study is a mapping of keys")
        lines: dict[KeyPath, int] = {}
        _walk(node, (), lines, file, [MAX_NODES])  # bounded before anything is built
        data = yaml.safe_load(text)
    except RecursionError:
        raise StudyFileError(
            file, (), None, f"nested deeper than YAML can read; a study is at most {MAX_DEPTH} deep"
        ) from None
    except yaml.constructor.ConstructorError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else None
        raise StudyFileError(
            file,
            (),
            line,
            f"{error.problem}; study files hold plain data and run no code (no object tags)",
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise StudyFileError(
            file, (), mark.line + 1 if mark else None, f"not valid YAML: {problem}"
        ) from None
    return YamlDocument(file=file, data=data, lines=lines)
