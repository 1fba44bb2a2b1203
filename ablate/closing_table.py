"""The table ``ablate run`` ends with: ACC, NMI and ARI per row and data set, over the seeds.

The same rows ``ablate report`` counts: a trial the scheduler stopped early ends on an early
epoch's numbers, so it is left out and named, not averaged in as a seed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from ablate.planner import TrialSpec
from ablate.study import Study
from ablate.wording import count


def summary_table(study: Study, results: list[tuple[TrialSpec, dict[str, Any]]]) -> str:
    """Variant (and searched point) × data set: mean ± std over seeds of ACC, NMI, ARI.

    Data sets print as the report prints them ("Digits (16 px)"), variants as the study names
    them.
    """
    import numpy as np

    from analysis.names import DisplayNames

    names = DisplayNames(study.analysis.names)
    searched = study.search.searched_keys() if study.search else []
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    stopped = [s.key for s, m in results if float(m.get("epoch", math.inf)) < s.total_epochs()]
    for spec, metrics in results:
        if spec.key in stopped:  # as `report`: an early epoch's numbers are not a result
            continue
        point = ", ".join(
            f"{k}={spec.params[k]:.4g}"
            if isinstance(spec.params[k], float)
            else f"{k}={spec.params[k]}"
            for k in searched
            if k in spec.params
        )
        row = f"{spec.variant} ({point})" if point else spec.variant
        for key in ("acc", "nmi", "ari"):
            if key in metrics:
                dataset = names.dataset(spec.dataset_entry.label)
                cells[(row, dataset)][key].append(float(metrics[key]))
    note = (
        f"\n({count(len(stopped), 'trial')} stopped early by the scheduler left out, as "
        f"`ablate report` leaves them: {', '.join(stopped)})"
        if stopped
        else ""
    )
    if not cells:
        return "no finished trial reported ACC/NMI/ARI" + note
    wv = max(len("variant"), *(len(v) for v, _ in cells))
    wd = max(len("dataset"), *(len(d) for _, d in cells))
    header = (
        f"{'variant':<{wv}}  {'dataset':<{wd}}  {'n':>2}  {'ACC':>13}  {'NMI':>13}  {'ARI':>13}"
    )
    lines = [header, "-" * len(header)]
    for (variant, dataset), values in sorted(cells.items()):
        parts = []
        for key in ("acc", "nmi", "ari"):
            v = np.asarray(values.get(key, []))
            parts.append(
                f"{v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.3f}" if v.size else "-"
            )
        n = max(len(v) for v in values.values())
        lines.append(
            f"{variant:<{wv}}  {dataset:<{wd}}  {n:>2}  " + "  ".join(f"{p:>13}" for p in parts)
        )
    return "\n".join(lines) + note
