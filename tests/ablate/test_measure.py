"""`ablate plan --measure`: a study's cost from the pace measured per phase, and its cache.

A fake clock makes every figure exact here; how close an estimate comes to a real run on a
machine's shared cores is a measurement, not a test: benchmarks/measure_accuracy.py.
"""

import json

import pytest

from ablate.cli import main
from ablate.measure import COST_FILE

#: Two variants, 64 images in batches of 16 (4 steps an epoch), 5 epochs, evaluated at 2, 4, 5.
COSTED = {
    "datasets": [{"name": "synthetic", "n": 64, "size": 8}],
    "base": {"image_size": 16, "epochs": 5},
    "variants": {"full": {}, "no_cluster": {"loss.cluster": False}},
    "resources": {"max_concurrent": 1},
    "run": {"eval_every": 2},
}


class FakeClock:
    """Each training step takes 0.1 s, each epoch's end 0.2 s, each evaluation 0.3 s."""

    def __init__(self, monkeypatch):
        from ablate import measure
        from trainables.loop import Trainer

        self.now = 0.0
        monkeypatch.setattr(measure, "clock", lambda: self.now)
        train_epoch, evaluate = Trainer.train_epoch, Trainer.evaluate

        def timed_epoch(trainer):
            self.now += 0.1 * trainer.settings.steps_per_epoch + 0.2
            return train_epoch(trainer)

        def timed_evaluation(trainer):
            self.now += 0.3
            return evaluate(trainer)

        monkeypatch.setattr(Trainer, "train_epoch", timed_epoch)
        monkeypatch.setattr(Trainer, "evaluate", timed_evaluation)


def test_the_estimate_is_the_measured_pace_times_the_trials_epochs_and_is_cached(
    tmp_path, make_study, monkeypatch, capsys
):
    """On a fake clock the figures are exact; benchmarks/measure_accuracy.py compares them
    with a real run on this machine."""
    FakeClock(monkeypatch)
    path = make_study("costed", **{**COSTED, "variants": {"full": {}}})
    assert main(["plan", str(path), "--measure", "--device", "cpu", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    assert "measured on cpu (ablate plan --measure):" in out
    assert "full-synthetic_n64_size8-s0 (×1): train 0.6 s/epoch" in out
    assert "evaluation" in out and "×3" in out  # epochs 2 and 4, and the last
    assert "about " in out and "wall-clock on 2 devices (1 trial at once)" in out
    cache = tmp_path / "results" / "costed" / COST_FILE
    costs = json.loads(cache.read_text())
    (cost,) = costs.values()
    assert cost["trial"] == "full-synthetic_n64_size8-s0"
    assert cost["evaluation_s"] == pytest.approx(0.3) and cost["evaluations"] == 3
    # 4 steps of 0.1 s and 0.2 s for the epoch's end, 5 epochs, 3 evaluations of 0.3 s
    assert cost["trial_hours"] * 3600 == pytest.approx(5 * (4 * 0.1 + 0.2) + 3 * 0.3)

    assert main(["plan", str(path), "--device", "cpu"]) == 0  # the cache, not a new measure
    assert "measured on cpu" in capsys.readouterr().out
    assert json.loads(cache.read_text()) == costs


def test_a_configuration_not_measured_is_named_in_the_total(make_study, monkeypatch, capsys):
    FakeClock(monkeypatch)
    path = make_study("costed", **COSTED)
    main(["plan", str(path), "--measure", "--device", "cpu"])
    capsys.readouterr()
    variants = {"full": {}, "no_cluster": {"loss.cluster": False, "tau_instance": 0.3}}
    edited = make_study("costed", **{**COSTED, "variants": variants})
    assert main(["plan", str(edited), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "full-synthetic_n64_size8-s0 (×1)" in out
    assert "no_cluster-synthetic_n64_size8-s0 (×1)" not in out
    assert "device-hours to train for the measured trials (1 not measured on cpu)" in out


def test_each_phase_a_method_declares_is_timed_in_its_state_and_weighted_by_its_epochs(
    monkeypatch,
):
    """GCC: 2 warm-up epochs (no graph) of 5; the 3 after them step with neighbours."""
    from ablate import measure
    from ablate.planner import TrialSpec
    from ablate.study import RunSettings
    from tests.trainables.conftest import TINY

    params = {**TINY, "warmup_epochs": 2, "epochs": 5, "graph_every": 1, "knn_k": 3}
    spec = TrialSpec("g", "gcc", "full", {"name": "synthetic", "n": 32, "size": 16}, 0, params)
    seen = []

    def timed(trainer, steps, first):  # a fake clock: 0.1 s a step, the epoch by its state
        trainer.epoch = first
        warm = trainer.method.warming_up
        seen.append((first, warm, trainer.method.graph is not None))
        return 0.1 * steps + (0.5 if warm else 2.0)

    monkeypatch.setattr(measure, "_timed_epoch", timed)
    cost = measure.measure_trial(spec, RunSettings(), "cpu")
    assert seen == [(0, True, False)] * 3 + [(2, False, True)] * 3
    steps = 32 // 16  # a full epoch's steps
    phases = [(s["name"], s["epochs"], round(s["seconds"], 6)) for s in cost["stages"]]
    assert phases == [("warm-up", 2, 0.1 * steps + 0.5), ("train", 3, 0.1 * steps + 2.0)]
    train_s = 2 * (0.1 * steps + 0.5) + 3 * (0.1 * steps + 2.0)
    evals = cost["evaluations"] * cost["evaluation_s"]
    assert cost["trial_hours"] * 3600 == pytest.approx(train_s + evals)


def test_the_cost_cache_is_keyed_by_the_trials_cpu_threads():
    from ablate.measure import config_key
    from ablate.planner import TrialSpec
    from ablate.study import RunSettings

    spec = TrialSpec("s", "cc", "full", {"name": "synthetic"}, 0, {})
    assert config_key(spec, RunSettings(), "cpu", 1) != config_key(spec, RunSettings(), "cpu", 4)
