"""The MLflow names are spelled once (analysis/run_schema.py) and all of them are documented."""

import re
from pathlib import Path

from analysis import run_schema

ROOT = Path(__file__).resolve().parents[2]
READERS_AND_WRITER = ("ablate/tracking.py", "ablate/status.py", "analysis/loading.py")


def _documented() -> str:
    return (ROOT / "docs" / "tracking.md").read_text(encoding="utf-8")


def test_every_name_the_schema_defines_is_on_the_tracking_page_and_in_its_table():
    page, table = _documented(), run_schema.__doc__
    names = [*run_schema.TAGS, *run_schema.PARAMS, *run_schema.METRICS, *run_schema.ARTIFACTS]
    missing = [n for n in names if f"`{n}`" not in page]
    assert not missing, f"docs/tracking.md does not list {missing}"
    undescribed = [n for n in run_schema.TAGS if n not in table]
    assert not undescribed, f"run_schema's table does not describe {undescribed}"


def test_every_ablate_tag_on_the_page_is_one_the_schema_defines():
    page = _documented()
    listed = set(re.findall(r"`(ablate\.[a-z_.<>]+)`", page))
    assert listed - set(run_schema.TAGS) == set()


def test_writer_and_readers_spell_no_tag_themselves():
    for module in READERS_AND_WRITER:
        text = (ROOT / module).read_text(encoding="utf-8")
        spelled = re.findall(r"[\"'`]ablate\.[a-z_]+[\"'`]", text)
        assert not spelled, f"{module} spells {spelled}: import it from analysis.run_schema"
