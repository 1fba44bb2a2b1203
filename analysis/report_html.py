"""A report as one self-contained HTML page (Jinja2): tables, verdicts, figures, the study file.

Everything is inside the file (styles inline, figures as PNG data URIs), so it can be mailed
or attached to a lab notebook; run ids link to an MLflow UI when one is known.
"""

from __future__ import annotations

import base64
import datetime
import io
import math
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from analysis.paired_text import distinct_notices
from analysis.report import ReportContent
from analysis.report_text import verdict_lines
from analysis.table_render import number_text
from analysis.tables import Table

HEADINGS = {"ablation": "Ablation", "comparison": "Results", "reproduction": "Against the paper"}


def render_html(content: ReportContent, notes: list[str]) -> str:
    """The page; ``notes`` are the runs left out (stopped early, unfinished), said on top."""
    environment = Environment(
        loader=PackageLoader("analysis", "templates"), autoescape=select_autoescape(["j2"])
    )
    report, names = content.input, content.names
    return environment.get_template("report.html.j2").render(
        title=report.name,
        description=report.description,
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        tracking_uri=report.tracking_uri,
        run_count=len(report.runs),
        tables=[_table_view(stem, table) for stem, table in content.tables.items()],
        verdicts="\n".join(verdict_lines(content.paired, names)),
        warnings=[*notes, *distinct_notices(list(content.paired), names)],
        figures=[
            {"stem": f.stem, "caption": f.caption, "png": _png(f.figure)} for f in content.figures
        ],
        study_text=report.study_text,
        metrics=[names.metric(m) for m in content.metrics],
        runs=_run_views(report.runs, content),
    )


def _table_view(stem: str, table: Table) -> dict[str, Any]:
    places = {1: "best", 2: "second"}
    return {
        "heading": HEADINGS.get(stem, stem.replace("_", " ")),
        "caption": table.caption,
        "label_headers": table.label_headers,
        "groups": [(table.shown(g), len(cols)) for g, cols in table.groups],
        "columns": [table.column_title(c) for _, c in table.columns],
        "rows": [
            {
                "group_start": i in table.rule_before,
                "labels": table.labels_of(labels),
                "cells": [
                    {
                        "text": number_text(c, 3),
                        "mark": c.mark,
                        "footnote": c.footnote,
                        "place": places.get(c.place or 0, ""),
                    }
                    for c in row
                ],
            }
            for i, (labels, row) in enumerate(zip(table.row_labels, table.cells, strict=True))
        ],
        "notes": table.notes,
    }


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _run_views(runs: pd.DataFrame, content: ReportContent) -> list[dict[str, Any]]:
    names, ui = content.names, content.input.mlflow_ui
    views = []
    for _, run in runs.iterrows():
        run_id = str(run.get("run_id", "") or "")
        experiment = run.get("experiment_id")
        link = (
            f"{ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
            if ui and run_id and isinstance(experiment, str)
            else None
        )
        values = [run.get(m) for m in content.metrics]
        views.append(
            {
                "name": run.get("run_name", ""),
                "row": names.row(str(run["variant"]) or str(run["method"])),
                "dataset": names.dataset(str(run["dataset"])),
                "seed": run.get("seed", ""),
                "status": run.get("status", ""),
                "scores": [_value(v) for v in values],
                "run_id": run_id,
                "link": link,
            }
        )
    return views


def _value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.3f}"
