"""A trial that no node can ever hold is refused at launch on a fixed cluster (it used to
wait forever without a word)."""

import os
import time

import pytest

from ablate.capacity import Demand, cluster_autoscales, unfit_reason
from tests.conftest import run_ablate

TWO_CORES = [{"CPU": 2.0, "memory": 1e10}]


def test_fits_and_does_not_fit():
    one = Demand(({"CPU": 1.0},))
    assert unfit_reason(one, TWO_CORES, workers=1) is None
    gpu = Demand(({"CPU": 1.0, "GPU": 1.0},))
    assert "the largest node has 0 GPU" in unfit_reason(gpu, TWO_CORES, workers=1)
    assert unfit_reason(gpu, [*TWO_CORES, {"CPU": 8.0, "GPU": 4.0}], workers=1) is None


def test_workers_and_the_trials_own_sliver_must_fit_together():
    """The reproduced hang: cpus 1 × 2 workers + the trial's 0.01 CPU on 2 cores."""
    two_workers = Demand(({"CPU": 1.0}, {"CPU": 1.0}), extra_cpu=0.01)
    reason = unfit_reason(two_workers, TWO_CORES, workers=2)
    assert reason == (
        "a trial asks for 2 workers × (1 CPU) + 0.01 CPU for the trial itself = 2.01 CPU, "
        "but the cluster has 2"
    )
    assert unfit_reason(two_workers, [{"CPU": 2.0}, {"CPU": 2.0}], workers=2) is None
    wide = Demand(({"CPU": 3.0}, {"CPU": 3.0}), extra_cpu=0.01)
    assert "each of its workers asks for 3 CPU on one node" in unfit_reason(
        wide, [{"CPU": 2.0}] * 4, workers=2
    )
    assert "no live node" in unfit_reason(wide, [], workers=2)


def test_ablate_run_refuses_in_one_line_instead_of_hanging(tmp_path, make_study):
    cores = os.cpu_count()
    resources = {"cpus": cores, "workers": 2, "max_concurrent": None}
    path = make_study("too_big", variants=None, base={"epochs": 1}, resources=resources)
    done = run_ablate("run", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("ablate run:")]
    assert f"a trial asks for 2 workers × ({cores} CPU)" in line
    assert f"but the cluster has {cores}" in line and "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started


def test_a_local_ray_is_seen_as_not_autoscaling(local_ray):
    from ray.experimental.internal_kv import _internal_kv_get

    def reported():
        raw = _internal_kv_get("__autoscaling_status")
        return raw is not None and b"autoscaler_report" in raw

    deadline = time.monotonic() + 60
    while not reported() and time.monotonic() < deadline:
        time.sleep(0.5)  # the monitor's first full report (the very first has load only)
    assert cluster_autoscales() is False


def test_on_an_autoscaling_cluster_it_warns_then_stops_after_the_wait(
    make_study, local_ray, monkeypatch
):
    """Nodes may still come, so only a warning at launch; but a trial that waited the whole
    run.placement_timeout_s with nothing running stops the study with the reason."""
    from ablate import runner
    from ablate.capacity import CapacityError
    from ablate.progress_callback import Display
    from ablate.study_file import load_study

    monkeypatch.setattr(runner, "cluster_autoscales", lambda: True)  # as under `ray up`
    path = make_study(
        "waits",
        variants=None,
        base={"epochs": 1},
        resources={"cpus": 3, "max_concurrent": None},
        run={"placement_timeout_s": 3},
    )
    lines = []
    start = time.monotonic()
    with pytest.raises(CapacityError) as stopped:
        runner.run_study(load_study(path), str(path), display=Display(printer=lines.append))
    assert time.monotonic() - start < 120
    assert any(x.startswith("warning: no node has room for a trial yet") for x in lines)
    message = str(stopped.value)
    assert "no trial could be placed for 3 s (run.placement_timeout_s)" in message
    assert "a trial asks for 3 CPU; the nodes have 2 CPU. Finished trials are kept" in message
