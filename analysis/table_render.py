"""Tables as text: LaTeX, Markdown, CSV and the terminal's, pure functions of a :class:`Table`.

They only format: they return text, never print or mutate, and every piece of user text
that enters LaTeX goes through :func:`latex_escape`.
"""

from __future__ import annotations

import io
import textwrap

import pandas as pd

from analysis.tables import CHECK, Cell, Table

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    CHECK: r"\checkmark",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": "-",
    "▲": r"$^{\blacktriangle}$",
    "▼": r"$^{\blacktriangledown}$",
    "≈": r"$^{\approx}$",
    "α": r"$\alpha$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (the one place user text enters LaTeX)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def number_text(cell: Cell, digits: int) -> str:
    """A cell as printed: the mean, and ± its std when it has several seeds."""
    if cell.mean is None:
        return "-"
    text = f"{cell.mean:+.{digits}f}" if cell.signed else f"{cell.mean:.{digits}f}"
    if cell.std is not None and cell.n > 1:
        text += f" ± {cell.std:.{digits}f}"
    return text


def to_latex(table: Table, digits: int = 3) -> str:
    """A booktabs ``table`` float: best in bold, second underlined, column groups."""
    n_labels = len(table.label_headers)
    spec = "l" * n_labels + "".join("c" * len(cols) for _, cols in table.groups)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
    ]
    group_cells, rules, start = [], [], n_labels + 1
    for group, cols in table.groups:
        group_cells.append(
            rf"\multicolumn{{{len(cols)}}}{{c}}{{{latex_escape(table.shown(group))}}}"
        )
        rules.append(rf"\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
        start += len(cols)
    lines.append(" & " * n_labels + " & ".join(group_cells) + r" \\")
    lines.append(" ".join(rules))
    header = [latex_escape(h) for h in table.label_headers] + [
        latex_escape(table.column_title(c)) for _, c in table.columns
    ]
    lines.append(" & ".join(header) + r" \\")
    lines.append(r"\midrule")
    for i, (labels, row) in enumerate(zip(table.row_labels, table.cells, strict=True)):
        if i in table.rule_before:
            lines.append(r"\midrule")
        values = []
        for cell in row:
            text = latex_escape(number_text(cell, digits))
            if cell.place == 1:
                text = rf"\textbf{{{text}}}"
            elif cell.place == 2:
                text = rf"\underline{{{text}}}"
            footnote = rf"\textsuperscript{{{cell.footnote}}}" if cell.footnote else ""
            values.append(text + latex_escape(cell.mark) + footnote)
        lines.append(
            " & ".join([latex_escape(x) for x in table.labels_of(labels)] + values) + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in table.notes:
        lines.append(rf"\par\smallskip{{\footnotesize {latex_escape(note)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_markdown(table: Table, digits: int = 3) -> str:
    """A Markdown table; best in bold, second in italics; groups prefix the column names.

    Markdown has no rule inside a table: a row reading *baselines* opens that group.
    """
    header = [
        *table.label_headers,
        *(f"{table.shown(g)} {table.column_title(c)}" for g, c in table.columns),
    ]
    lines = [
        f"**{table.caption}**",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for i, (labels, row) in enumerate(zip(table.row_labels, table.cells, strict=True)):
        if i in table.rule_before:
            lines.append("| *baselines* |" + " |" * (len(header) - 1))
        values = []
        for cell in row:
            text = number_text(cell, digits)
            text = f"**{text}**" if cell.place == 1 else f"_{text}_" if cell.place == 2 else text
            text = f"{text} {cell.mark}" if cell.mark else text
            values.append(f"{text}<sup>{cell.footnote}</sup>" if cell.footnote else text)
        lines.append("| " + " | ".join([*table.labels_of(labels), *values]) + " |")
    lines += ["", *table.notes] if table.notes else []
    return "\n".join(lines) + "\n"


def to_text(table: Table, digits: int = 3, width: int = 100) -> str:
    """The table for a terminal: aligned columns, data set names over their metrics.

    A significantly best value (bold elsewhere) ends in ``*``; the baselines sit under a rule.
    """
    heads = [*table.label_headers, *(table.column_title(c) for _, c in table.columns)]
    marked = any(cell.mark for row in table.cells for cell in row)
    body = []
    for labels, row in zip(table.row_labels, table.cells, strict=True):
        values = []
        for cell in row:
            text = number_text(cell, digits) + ("*" if cell.place == 1 else " ")
            text = f"{text} {cell.mark or ' '}" if marked else text
            values.append(text + (f"({cell.footnote})" if cell.footnote else ""))
        body.append([*table.labels_of(labels), *values])
    widths = [max(len(r[j]) for r in [heads, *body]) for j in range(len(heads))]
    n_labels = len(table.label_headers)
    spans, start = [], n_labels  # widen a column so its data set's name fits above it
    for group, cols in table.groups:
        name = table.shown(group)
        room = sum(widths[start : start + len(cols)]) + 2 * (len(cols) - 1)
        if len(name) > room:
            widths[start + len(cols) - 1] += len(name) - room
        spans.append((name, sum(widths[start : start + len(cols)]) + 2 * (len(cols) - 1)))
        start += len(cols)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if j < n_labels else c.rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    label_width = sum(widths[:n_labels]) + 2 * n_labels
    rule = "─" * (label_width + sum(w for _, w in spans) + 2 * (len(spans) - 1))
    lines = [table.caption, rule]
    lines.append((" " * label_width + "  ".join(n.center(w) for n, w in spans)).rstrip())
    lines += [line(heads), rule]
    for i, cells in enumerate(body):
        if i in table.rule_before:
            lines.append("╌" * len(rule))
        lines.append(line(cells))
    lines.append(rule)
    for note in table.notes:
        lines += textwrap.wrap(note, width)
    if any(cell.place == 1 for row in table.cells for cell in row):
        lines.append("*: printed bold in LaTeX, Markdown and HTML.")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Tidy CSV: one row per table row and column, with mean, std and n."""
    buffer = io.StringIO()
    rows = []
    for labels, row in zip(table.row_labels, table.cells, strict=True):
        for (group, column), cell in zip(table.columns, row, strict=True):
            record: dict[str, object] = dict(zip(table.label_headers, labels, strict=True))
            record.update(
                group=group,
                column=column,
                mean=cell.mean,
                std=cell.std,
                n=cell.n,
                mark=cell.mark,
                footnote=cell.footnote,
            )
            rows.append(record)
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue()
