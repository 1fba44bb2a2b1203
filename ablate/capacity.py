"""Refuse at launch a trial that can never be placed, rather than wait for it forever.

Ray queues a resource request that no node can ever satisfy without a word: on a 2-core
machine `resources: {cpus: 1, workers: 2}` asks for two worker CPUs beside the trial's own
sliver and the study hangs. On a fixed cluster (local Ray, or `--address` without an
autoscaler) what exists now is all there will be, so the driver refuses such a study with one
line naming what a trial asks and what exists. With an autoscaler, nodes may still come, so it
only warns.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback

from ablate.study import Study

#: The trial's own reservation when a Ray Train TorchTrainer runs its workers (runner.py).
DATA_PARALLEL_TRIAL_CPU = 0.01


class CapacityError(ValueError):
    """A trial of the study asks for more than the cluster has or will have."""


@dataclass(frozen=True)
class Demand:
    """What one trial reserves.

    ``bundles`` must each fit on one node (Train's workers, or the single-worker trial
    itself); a multi-worker trial's own sliver, ``extra_cpu``, sits beside them.
    """

    bundles: tuple[dict[str, float], ...]
    extra_cpu: float = 0.0

    def total(self, resource: str) -> float:
        own = self.extra_cpu if resource == "CPU" else 0.0
        return own + sum(b.get(resource, 0.0) for b in self.bundles)


def trial_demand(study: Study) -> Demand:
    r = study.resources
    bundle = {"CPU": float(r.cpus), **({"GPU": float(r.gpus)} if r.gpus else {})}
    if r.workers == 1:
        return Demand((bundle,))
    return Demand(tuple(dict(bundle) for _ in range(r.workers)), DATA_PARALLEL_TRIAL_CPU)


def _shown(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(resources.items())) or "nothing"


def unfit_reason(demand: Demand, nodes: list[dict[str, float]], workers: int) -> str | None:
    """Why no placement of one trial exists on these nodes (their total resources), or None."""
    if not nodes:
        return "the cluster has no live node"
    asked = _shown(demand.bundles[0])
    for resource, need in demand.bundles[0].items():
        biggest = max(node.get(resource, 0.0) for node in nodes)
        if need > biggest:
            per = "each of its workers" if workers > 1 else "a trial"
            return (
                f"{per} asks for {asked} on one node (resources.cpus/gpus), but the largest "
                f"node has {biggest:g} {resource}"
            )
    for resource in ("CPU", "GPU"):
        need = demand.total(resource)
        have = sum(node.get(resource, 0.0) for node in nodes)
        if need > have + 1e-9:
            what = (
                f"{workers} workers × ({asked}) + {demand.extra_cpu:g} CPU for the trial itself"
                if workers > 1
                else asked
            )
            return f"a trial asks for {what} = {need:g} {resource}, but the cluster has {have:g}"
    return None


def _live_nodes() -> list[dict[str, float]]:
    import ray

    return [
        {k: float(v) for k, v in node["Resources"].items()}
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node.get("Alive")
    ]


def cluster_autoscales() -> bool:
    """Whether an autoscaler with configured node types runs (``ray up``'s clusters).

    Ray's monitor runs on every head; without an autoscaling config it uses a read-only
    provider whose node types are the anonymous ``node_<id>`` of each node. Unknown counts as
    autoscaling (warn rather than refuse).
    """
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        raw = _internal_kv_get("__autoscaling_status")
        mapping: dict[str, Any] = json.loads(raw)["autoscaler_report"]["node_type_mapping"]
    except Exception:  # noqa: BLE001 - no report yet, or another format: do not refuse
        return True
    return any(kind != f"node_{node}" for node, kind in mapping.items())


def check_capacity(study: Study, fixed: bool, warn: Any) -> None:
    """Raise :class:`CapacityError` on a fixed cluster; call ``warn(line)`` otherwise."""
    reason = unfit_reason(trial_demand(study), _live_nodes(), study.resources.workers)
    if reason is None:
        return
    if fixed:
        raise CapacityError(
            f"study {study.name!r} can never start a trial here: {reason}; lower resources "
            "(cpus, gpus, workers) or run it on a cluster that has them"
        )
    warn(
        f"warning: no node has room for a trial yet ({reason}); waiting for the autoscaler "
        "to add nodes"
    )


class PlacementWatch(Callback):
    """Stop a study whose trials have waited ``timeout_s`` with none running.

    On an autoscaling cluster a trial no node type can hold would otherwise wait forever;
    queueing behind running trials is normal and never counts.
    """

    def __init__(self, study: Study, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.asked = _shown(trial_demand(study).bundles[0])
        self.workers = study.resources.workers
        self._since: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_since": None}

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self.timeout_s is None:
            return
        waiting = any(t.status == "PENDING" for t in trials)
        running = any(t.status == "RUNNING" for t in trials)
        if not waiting or running:
            self._since = None
            return
        self._since = self._since or time.monotonic()
        if time.monotonic() - self._since > self.timeout_s:
            nodes = "; ".join(
                _shown({k: v for k, v in n.items() if k in ("CPU", "GPU")}) for n in _live_nodes()
            )
            each = f"{self.workers} workers × ({self.asked})" if self.workers > 1 else self.asked
            raise CapacityError(
                f"no trial could be placed for {self.timeout_s:g} s (run.placement_timeout_s): "
                f"a trial asks for {each}; the nodes have {nodes or 'nothing'}. Finished trials "
                "are kept: "
                "run the study again once the cluster has room, or lower its resources"
            )
