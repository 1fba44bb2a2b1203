"""README and docs/ are the user's contract: README's commands are what CI runs, README stays
short, and together they document every command, flag and key a user may type."""

import re
import typing
from pathlib import Path

from ablate.cli import build_parser
from trainables.registry import registered_methods

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: README and every page of docs/: where a command, flag or key counts as documented
DOCS = "\n".join(
    [README, *(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))]
)


def _bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    install, tests = (block.strip() for block in _bash_blocks()[:2])
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install in ci and tests in ci
    assert ci.index(install) < ci.index(tests)
    assert "pytest" in tests


def test_every_cli_command_is_documented():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert f"`ablate {name}" in README, name  # the first screen's table names them all


def test_every_cli_flag_is_documented():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in DOCS, f"ablate {name} {flag}"


def test_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 220
    links = re.findall(r"\]\((docs/[^)#]+)", README)
    assert len(set(links)) >= 10
    for link in links:
        assert (ROOT / link).is_file(), link


def test_every_method_key_is_documented():
    for name, method in registered_methods().items():
        assert f"(`{name}`)" in DOCS, name
        for key in method.config_class().flat():
            assert f"`{key}`" in DOCS, f"{name}: {key}"


def _study_keys(model, prefix=""):
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        models = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        container = typing.get_origin(annotation) in (dict, list)
        if models and not container:
            yield from _study_keys(models[0], f"{key}.")
        else:
            yield key


def test_every_study_key_is_documented():
    from ablate.study import Study

    for key in _study_keys(Study):
        assert f"`{key}`" in DOCS, key
