"""``ablate plan --measure``: what a study will cost, measured on this machine before launch.

Each distinct configuration (variant, data set and search point; seeds repeat one) is built
as its trial would be, and on the chosen device a few training steps of every phase the
method declares (:meth:`~trainables.method.Method.phases`: its stages, and GCC's warm-up apart
from the epochs after it), the epoch-end update (graph rebuilds, mining) and one evaluation
are timed; each phase's pace is weighted by its epochs. A linear fit of two
short epochs separates the per-step time from the per-epoch one, so a full epoch's seconds
follow from its number of steps. The figures are cached in
``<run.storage>/<study>/measured_cost.json``, keyed by configuration, device and the
trial's CPU threads (``resources.cpus``), and
``ablate plan`` prints them afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from ablate.planner import TrialSpec, expand, first_trial
from ablate.progress import duration
from ablate.study import RunSettings, Study
from ablate.wording import count

COST_FILE = "measured_cost.json"
SHORT, LONG = 1, 3  # steps of the two timed epochs
#: The clock every timing reads (a test replaces it; benchmarks/measure_accuracy.py compares
#: its estimates with real runs).
clock = time.perf_counter


def config_key(spec: TrialSpec, run: RunSettings, device: str, cpus: float) -> str:
    """What a trial's cost depends on: everything but its seed and its name."""
    material = {
        "method": spec.method,
        "config": spec.method_config().model_dump(mode="json"),
        "dataset": spec.dataset_entry.model_dump(mode="json"),
        "steps_per_epoch": run.steps_per_epoch,
        "eval_every": run.eval_every,
        "amp": run.amp,
        "device": device,
        "cpus": cpus,  # the trial's torch threads
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def distinct_trials(study: Study) -> dict[str, list[TrialSpec]]:
    """The study's trials grouped by configuration (seeds apart), keyed by their first name."""
    trials = expand(study) if not study.adaptive else [first_trial(study)] * len(study.seeds)
    groups: dict[str, list[TrialSpec]] = {}
    for trial in trials:
        seedless = dataclasses.replace(trial, seed=0)
        groups.setdefault(json.dumps(seedless.to_dict(), sort_keys=True, default=str), []).append(
            trial
        )
    return {group[0].key: group for group in groups.values()}


def _enter_phase(trainer: Any, first: int) -> None:
    """Put the trainer where a phase begins: its stage, after the epoch-end update before it.

    The update is what turns one phase into the next (GCC mines its first graph at the end
    of the warm-up), so the phase's steps are timed as they will run.
    """
    stage = trainer.start_at(first)
    if first > trainer.stage_ends[stage] - trainer.stages[stage].epochs:  # inside a stage
        trainer.method.on_epoch_end(first - 1)


def _timed_epoch(trainer: Any, steps: int, first: int) -> float:
    """Seconds of one epoch of ``steps`` steps, timed at epoch ``first`` of its phase."""
    import torch

    trainer.epoch = first  # each timed epoch at the phase's start, not drifting past it
    trainer.settings = dataclasses.replace(trainer.settings, steps_per_epoch=steps)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = clock()
    trainer.train_epoch()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return clock() - start


def measure_trial(
    spec: TrialSpec, run: RunSettings, device: str, cpus: float = 1.0
) -> dict[str, Any]:
    """Seconds per full epoch of each stage, seconds per evaluation, hours for the trial.

    On the CPU with the trial's own ``resources.cpus`` threads, as its Ray worker has.
    """
    import torch

    from ablate.trainable import trial_data
    from trainables.loop import LoopSettings, Trainer
    from trainables.registry import get_method

    method_class = get_method(spec.method)
    config = spec.method_config()
    data = trial_data(spec, run)
    torch.set_num_threads(max(1, int(cpus)))
    settings = LoopSettings(seed=spec.seed, device=device, amp=run.amp, eval_every=10**9)
    trainer = Trainer(method_class, config, data, settings)
    stages: list[dict[str, Any]] = []
    for phase in method_class.phases(config):
        _enter_phase(trainer, phase.first)
        timings = [
            _timed_epoch(trainer, steps, phase.first) for steps in (SHORT, SHORT, LONG)
        ]  # the first warms up: allocator, first graph, autotuning
        short, long = timings[1], timings[2]
        per_step = max((long - short) / (LONG - SHORT), 0.0)
        per_epoch = max(short - SHORT * per_step, 0.0)  # epoch-end updates
        full = dataclasses.replace(trainer.settings, steps_per_epoch=run.steps_per_epoch)
        trainer.settings = full
        steps = trainer.full_epoch_steps()
        stages.append(
            {"name": phase.name, "epochs": phase.epochs, "seconds": steps * per_step + per_epoch}
        )
    start = clock()
    trainer.evaluate()
    evaluation = clock() - start
    ends = {end for end, s in zip(trainer.stage_ends, trainer.stages, strict=True) if s.epochs}
    every = set(range(run.eval_every, trainer.total_epochs + 1, run.eval_every))
    evaluations = max(len(every | ends), 1)  # an untrained baseline is evaluated once
    seconds = sum(s["epochs"] * s["seconds"] for s in stages) + evaluations * evaluation
    return {
        "stages": stages,
        "evaluation_s": evaluation,
        "evaluations": evaluations,
        "trial_hours": seconds / 3600,
        "device": device,
    }


def cost_file(study: Study) -> Path:
    return Path(study.run.storage).resolve() / study.name / COST_FILE


def load_costs(study: Study) -> dict[str, Any]:
    path = cost_file(study)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}  # a damaged cache is measured again


def measure_study(study: Study, device: str) -> dict[str, Any]:
    """Measure every distinct configuration not yet cached for ``device``; the whole cache."""
    costs = load_costs(study)
    for name, group in distinct_trials(study).items():
        key = config_key(group[0], study.run, device, study.resources.cpus)
        if key not in costs:
            cost = measure_trial(group[0], study.run, device, study.resources.cpus)
            costs[key] = {"trial": name, **cost}
    path = cost_file(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(costs, indent=2, sort_keys=True), encoding="utf-8")
    partial.replace(path)
    return costs


def cost_lines(study: Study, device: str, devices: int | None = None) -> list[str]:
    """What ``plan`` prints from the cache: per configuration, then the study's total."""
    costs = load_costs(study)
    groups = distinct_trials(study)
    cpus = study.resources.cpus
    known = {
        name: costs.get(config_key(g[0], study.run, device, cpus)) for name, g in groups.items()
    }
    if not any(known.values()):
        return []
    r = study.resources
    unit = r.gpus if r.gpus > 0 else 1.0  # devices per worker: a CPU trial counts as one
    from ablate.reuse_plan import replayed

    skipped = replayed(study).names

    lines = [f"measured on {device} (ablate plan --measure):"]
    total, trial_hours, missing, saved = 0.0, 0.0, 0, 0.0
    for name, group in groups.items():
        cost = known[name]
        if cost is None:
            missing += len(group)
            continue
        done = sum(t.key in skipped for t in group)  # replayed, not trained
        saved += cost["trial_hours"] * unit * done
        per_epoch = ", ".join(f"{s['name']} {s['seconds']:.1f} s/epoch" for s in cost["stages"])
        hours = cost["trial_hours"]
        total += hours * unit * (len(group) - done)  # workers share the work: as many hours
        trial_hours += hours * (len(group) - done)
        lines.append(
            f"  {name} (×{len(group)}): {per_epoch or 'no training'}, evaluation "
            f"{cost['evaluation_s']:.1f} s ×{cost['evaluations']}; {duration(hours * 3600)} a trial"
        )
    line = f"study: {total:.2f} device-hours to train"
    if saved:
        line += f" ({saved:.2f} saved: trials done already or repeated, replayed)"
    if missing:
        line += f" for the measured trials ({missing} not measured on {device})"
    if devices:
        at_once = max(int(devices // (unit * r.workers)), 1)
        if r.max_concurrent:
            at_once = min(at_once, r.max_concurrent)
        wall = trial_hours / r.workers / at_once  # ideal scaling over a trial's workers
        line += f"; about {duration(wall * 3600)} wall-clock on {devices} devices "
        line += f"({count(at_once, 'trial')} at once)"
    lines.append(line)
    return lines


def mean_trial_hours(study: Study, device: str) -> float | None:
    """The mean device-hours of the study's measured trials on ``device`` (None: none)."""
    costs, cpus = load_costs(study), study.resources.cpus
    unit = study.resources.gpus if study.resources.gpus > 0 else 1.0
    measured = [
        (cost["trial_hours"] * unit, len(group))
        for group in distinct_trials(study).values()
        if (cost := costs.get(config_key(group[0], study.run, device, cpus)))
    ]
    trials = sum(n for _, n in measured)
    return sum(hours * n for hours, n in measured) / trials if trials else None
