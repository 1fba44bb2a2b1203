"""How many trials of a set of studies the trial store saves, run in the order given.

Each study's trials are keyed as they will be (``ablate.trial_keys``: method, resolved
configuration, data set, seed, loop settings, code); a trial whose key an earlier study of the
list, or an earlier trial of its own, holds is replayed instead of trained. Printed per
study: trials, replayed, to train, and the device-hours saved where a figure is known (the
study's ``resources.gpu_hours_per_trial``, or ``ablate plan --measure``'s cache for
``--device``); and the totals. Nothing is trained or written.

    .venv/bin/python benchmarks/study_overlap.py \
        studies/gacl_loss_ablation.yaml studies/gacl_knn.yaml
"""

from __future__ import annotations

import argparse

from ablate.measure import config_key, load_costs
from ablate.planner import expand
from ablate.study import Study
from ablate.study_file import load_study
from ablate.trial_keys import trial_keys


def trial_hours(study: Study, device: str) -> dict[str, float]:
    """Device-hours of each trial (by name) where known; measured figures first."""
    costs = load_costs(study)
    unit = study.resources.gpus if study.resources.gpus > 0 else 1.0
    hours = {}
    for trial in expand(study):
        measured = costs.get(config_key(trial, study.run, device, study.resources.cpus))
        if measured is not None:
            hours[trial.key] = measured["trial_hours"] * unit * study.resources.workers
        elif study.resources.gpu_hours_per_trial is not None:
            hours[trial.key] = study.resources.gpu_hours_per_trial
    return hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("studies", nargs="+", help="study files, in the order they would run")
    parser.add_argument("--device", default="cuda", help="device of measured costs (cuda)")
    args = parser.parse_args()
    seen: set[str] = set()
    trials = replayed_total = unknown_total = 0
    saved_total = 0.0
    for path in args.studies:
        study = load_study(path)
        keys, hours = trial_keys(study).hashed(), trial_hours(study, args.device)
        replayed = [name for name, key in keys.items() if key in seen]
        seen.update(keys.values())
        saved = sum(hours.get(name, 0.0) for name in replayed)
        unknown = sum(name not in hours for name in replayed)
        print(
            f"{study.name}: {len(keys)} trials, {len(replayed)} replayed, "
            f"{len(keys) - len(replayed)} to train; {_saved(saved, unknown)}"
        )
        trials, replayed_total = trials + len(keys), replayed_total + len(replayed)
        saved_total, unknown_total = saved_total + saved, unknown_total + unknown
    share = replayed_total / max(trials, 1)
    print(
        f"all: {trials} trials, {replayed_total} replayed ({share:.0%}); "
        + _saved(saved_total, unknown_total)
    )


def _saved(hours: float, unknown: int) -> str:
    note = f" ({unknown} replayed trials with no cost figure)" if unknown else ""
    return f"device-hours saved: {hours:.2f}{note}"


if __name__ == "__main__":
    main()
