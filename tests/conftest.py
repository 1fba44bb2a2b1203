"""Fixtures every test package shares, and the tiers a test falls in.

Tiers are marked by mechanism, not by hand: a test that starts Ray, an ``ablate`` driver (a
process, or ``main(["run", ...])`` in this one) or gloo ranks is ``e2e``; the GPU acceptance
command's smoke run is ``acceptance``. ``slow`` is set by hand on heavy computation. The quick
tier is ``pytest -m "not e2e and not acceptance and not slow"``.
"""

from __future__ import annotations

import dis
import functools
import inspect
import re
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

#: Fixtures that start Ray.
E2E_FIXTURES = frozenset({"local_ray", "two_node_cluster"})
#: What a test (or a tests/ helper it calls) writes when it starts Ray, a driver or gloo ranks.
E2E_CODE = re.compile(
    r"""\bray\.init\(|["']start["'],\s*["']--(head|address)|\bmain\(\s*\[\s*["']run["']"""
    r"""|\b(start_ablate|run_ablate|on_two_ranks)\(|\binit_process_group\(|get_context\(["']spawn"""
    r"""|with_name\(["']ablate["']\)|["']ablate\.cli["']"""
)
ACCEPTANCE_CODE = re.compile(r"gpu_acceptance\.py")


@functools.cache
def _own_code(function: Any) -> tuple[str, tuple[Any, ...]]:
    """The source of ``function``, and the tests/ functions and classes it names as globals."""
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError):
        return "", ()
    names: set[str] = set()  # globals it loads (not attribute names: ``thread.join``)
    codes = [getattr(function, "__code__", None)]
    while codes:
        code = codes.pop()
        if code is None:
            continue
        names.update(
            i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")
        )
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    module_globals = getattr(function, "__globals__", {})
    callees = []
    for name in sorted(names):
        target = module_globals.get(name)
        if inspect.isclass(target):
            target = target.__init__
        module = getattr(target, "__module__", "") or ""
        if callable(target) and module.split(".")[0] == "tests":
            callees.append(target)
    return text, tuple(callees)


def _reached_code(function: Any, seen: set[Any]) -> str:
    """The source of ``function`` and of every tests/ function or class it names, transitively."""
    if function in seen:
        return ""
    seen.add(function)
    text, callees = _own_code(function)
    return text + "".join(_reached_code(callee, seen) for callee in callees)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        seen: set[Any] = set()
        function = getattr(item, "function", None)
        code = _reached_code(function, seen) if function is not None else ""
        info = getattr(item, "_fixtureinfo", None)  # fixtures of tests/ start things too
        for definitions in info.name2fixturedefs.values() if info else ():
            for definition in definitions:
                if (getattr(definition.func, "__module__", "") or "").startswith("tests"):
                    code += _reached_code(definition.func, seen)
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & E2E_FIXTURES or E2E_CODE.search(code):
            item.add_marker(pytest.mark.e2e)
        if ACCEPTANCE_CODE.search(code):
            item.add_marker(pytest.mark.acceptance)


#: The smallest study that trains: CC with the 4-layer proxy network on 32 synthetic 8-pixel
#: images, 2 epochs, one seed (the orchestration is under test, not the network).
STUDY_DEFAULTS: dict[str, Any] = {
    "method": "cc",
    "datasets": [{"name": "synthetic", "n": 32, "size": 8}],
    "seeds": [0],
    "base": {"backbone": "cnn4", "image_size": 8, "epochs": 2, "batch_size": 16},
    "variants": {"full": {}},
    "resources": {"cpus": 1, "max_concurrent": 2},
}
#: Sections whose keys a test's own merge into the defaults (others replace them).
MERGED = ("base", "resources", "run", "tracking")


def study_document(folder: Path, name: str, **sections: Any) -> dict[str, Any]:
    """A study's YAML document: :data:`STUDY_DEFAULTS` with ``sections`` over them.

    Its MLflow database and storage lie in ``folder``. A section (or a key of a merged
    section) set to None is left out.
    """
    document: dict[str, Any] = {
        "name": name,
        **STUDY_DEFAULTS,
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "run": {"storage": f"{folder}/results"},
    }
    for key, value in sections.items():
        if key in MERGED and isinstance(value, dict):  # a key set to None is left out
            merged = {**document.get(key, {}), **value}
            document[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            document[key] = value
    return {k: v for k, v in document.items() if v is not None}


def study_file(folder: Path, name: str, **sections: Any) -> Path:
    """Write :func:`study_document` to ``<folder>/<name>.yaml``."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study_document(folder, name, **sections), sort_keys=False))
    return path


@pytest.fixture
def make_study(tmp_path: Path) -> Callable[..., Path]:
    """``make_study(name, **sections)``: :func:`study_file` in the test's ``tmp_path``.

    ``seeds=[0, 1]``, ``base={"epochs": 3}`` (merged), ``variants={...}`` (replaced), ...
    """
    return lambda name, **sections: study_file(tmp_path, name, **sections)


@pytest.fixture(scope="session")
def local_ray():
    """One real local Ray for every in-process run of the session (started once)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def start_ablate(*args: str, cwd: Path, under: tuple[str, ...] = ()) -> subprocess.Popen:
    """`ablate ARGS` as its own session, stdout and stderr merged, read as text.

    ``under``: a command that runs it (``("timeout", "30")``).
    """
    return subprocess.Popen(
        [*under, sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_ablate(
    *args: str, cwd: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`ablate ARGS` to its end, stdout and stderr apart (``env``: its environment)."""
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
