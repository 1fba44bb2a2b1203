"""`ablate plan --measure`: a measured estimate of a study's cost, against a real run of the
same study on the same machine, and its cache."""

import json

import pytest
from mlflow import MlflowClient

from ablate.cli import main
from ablate.measure import COST_FILE
from tests.conftest import write_study

STUDY = """\
name: costed
method: cc
datasets: [{{name: synthetic, n: 64, size: 8}}]
seeds: [0]
base: {{backbone: resnet18, image_size: 16, epochs: 5, batch_size: 16}}
variants:
  full: {{}}
  no_cluster: {{loss.cluster: false}}
resources: {{cpus: 1, max_concurrent: 1}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results", eval_every: 2}}
"""

#: The stated accuracy: the real trial within this factor of the estimate, either way. Not
#: counted in the estimate: the trial's start in its Ray worker (data set, network) and
#: checkpoints, a second or two here.
FACTOR = 2.0


def test_measured_estimate_is_within_a_stated_factor_of_the_real_run(tmp_path, local_ray, capsys):
    one_row = STUDY.replace("  no_cluster: {{loss.cluster: false}}\n", "")
    path = write_study(tmp_path, "costed", one_row)
    assert main(["plan", str(path), "--measure", "--device", "cpu", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    assert "measured on cpu (ablate plan --measure):" in out
    assert "full-synthetic_n64_size8-s0 (×1): train " in out and "s/epoch" in out
    assert "evaluation" in out and "×3" in out  # epochs 2 and 4, and the last
    assert "about " in out and "wall-clock on 2 devices (1 trial at once)" in out
    cache = tmp_path / "results" / "costed" / COST_FILE
    costs = json.loads(cache.read_text())
    estimate = {c["trial"]: c["trial_hours"] * 3600 for c in costs.values()}
    assert set(estimate) == {"full-synthetic_n64_size8-s0"}
    assert all(seconds > 0 for seconds in estimate.values())

    assert main(["plan", str(path), "--device", "cpu"]) == 0  # the cache, not a new measure
    assert "measured on cpu" in capsys.readouterr().out
    assert json.loads(cache.read_text()) == costs

    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("costed")
    for run in client.search_runs([experiment.experiment_id]):
        name = run.data.tags.get("ablate.trial")
        if name is None:
            continue
        real = (run.info.end_time - run.info.start_time) / 1000
        ratio = real / estimate[name]
        print(f"{name}: estimated {estimate[name]:.1f} s, real {real:.1f} s, ratio {ratio:.2f}")
        assert 1 / FACTOR <= ratio <= FACTOR, (name, estimate[name], real)


def test_a_configuration_not_measured_is_named_in_the_total(tmp_path, capsys):
    path = write_study(tmp_path, "costed", STUDY.replace("epochs: 5", "epochs: 1"))
    main(["plan", str(path), "--measure", "--device", "cpu"])
    capsys.readouterr()
    edited = write_study(
        tmp_path,
        "costed",
        STUDY.replace("epochs: 5", "epochs: 1").replace(
            "no_cluster: {{loss.cluster: false}}",
            "no_cluster: {{loss.cluster: false, tau_instance: 0.3}}",
        ),
    )
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
