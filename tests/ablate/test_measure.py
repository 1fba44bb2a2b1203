"""`ablate plan --measure`: a measured estimate of a study's cost, against a real run of the
same study on the same machine, and its cache."""

import json

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
