"""Finished trials reused across studies and within one, by their key (real Ray, real MLflow)."""

import json
import re

import pytest
from mlflow import MlflowClient

from ablate.cli import main
from analysis import run_schema as schema

SECOND = {"seeds": [0, 1], "variants": {"full": {}, "no_entropy": {"loss.entropy": False}}}


def _trials(root, experiment):
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    return client, {r.data.tags[schema.TRIAL]: r for r in runs if schema.TRIAL in r.data.tags}


def test_a_second_study_replays_the_row_the_first_trained(tmp_path, make_study, local_ray, capsys):
    assert main(["run", str(make_study("first"))]) == 0
    costed = {"gpu_hours_per_trial": 0.5}
    second_file = str(make_study("second", **SECOND, resources=costed))
    capsys.readouterr()
    assert main(["plan", second_file, "--measure", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1 of 4 trials done already (in the trial store" in out
    assert "trials: 4 (3 to train, 1 replayed); estimated GPU-hours: 1.5 (0.5 saved)" in out
    assert re.search(r"study: [0-9.]+ device-hours to train \([0-9.]+ saved: trials done", out)
    assert main(["run", second_file]) == 0
    assert "4 trials finished, 0 failed" in capsys.readouterr().out
    client, first = _trials(tmp_path, "first")
    _, second = _trials(tmp_path, "second")
    reused = second["full-synthetic_n32_size8-s0"]
    original = first["full-synthetic_n32_size8-s0"]
    claim = "first/full-synthetic_n32_size8-s0 (publisher's claim)"
    assert reused.data.tags[schema.REUSED_FROM] == claim
    for key in ("final_acc", "final_nmi", "final_loss", "loss_instance"):
        assert reused.data.metrics[key] == original.data.metrics[key], key
    history = [m.value for m in client.get_metric_history(reused.info.run_id, "loss")]
    assert history == [m.value for m in client.get_metric_history(original.info.run_id, "loss")]
    assert {a.path for a in client.list_artifacts(reused.info.run_id)} == {
        "config.yaml",
        "assignments.npy",
    }
    # another seed, another configuration: trained
    for name in ("full-synthetic_n32_size8-s1", "no_entropy-synthetic_n32_size8-s0"):
        assert schema.REUSED_FROM not in second[name].data.tags, name
    # the second study's statistics count the replayed row with its original numbers
    paired = tmp_path / "paired.json"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = ["stats", "second", "--paired", "--control", "full", "--tracking-uri", uri]
    assert main([*command, "--json", str(paired)]) == 0
    (row,) = json.loads(paired.read_text())["rows"]
    assert row["seeds"] == [0, 1]
    trained = second["full-synthetic_n32_size8-s1"].data.metrics["final_acc"]
    assert row["control_mean"] == pytest.approx((original.data.metrics["final_acc"] + trained) / 2)
    assert main(["report", second_file, "--format", "md", "--out", str(tmp_path / "report")]) == 0


def test_reuse_off_trains_everything_and_equal_variants_share_one_trial(
    tmp_path, make_study, local_ray, capsys
):
    assert main(["run", str(make_study("first"))]) == 0
    assert main(["run", str(make_study("no_reuse", run={"reuse_trials": False}))]) == 0
    _, trials = _trials(tmp_path, "no_reuse")
    assert schema.REUSED_FROM not in trials["full-synthetic_n32_size8-s0"].data.tags

    twins_file = str(
        make_study(
            "twins",
            variants={"full": {}, "same": {"tau_instance": 0.5}},  # 0.5 is CC's default
            run={"storage": f"{tmp_path}/other"},
        )
    )
    capsys.readouterr()
    assert main(["validate", twins_file]) == 0
    assert "note: variants 'full' and 'same' resolve to the same configuration" in (
        capsys.readouterr().out
    )
    assert main(["plan", twins_file]) == 0
    assert "trials: 2 (1 to train, 1 replayed)" in capsys.readouterr().out
    assert main(["run", twins_file]) == 0
    _, trials = _trials(tmp_path, "twins")
    tags = [trials[f"{v}-synthetic_n32_size8-s0"].data.tags for v in ("full", "same")]
    origins = [t.get(schema.REUSED_FROM) for t in tags]
    assert sorted(o is None for o in origins) == [False, True]  # one trained, one replayed
    trained = next(v for v, o in zip(("full", "same"), origins, strict=True) if o is None)
    assert f"twins/{trained}-synthetic_n32_size8-s0 (publisher's claim)" in origins


def test_two_studies_started_at_once_train_their_shared_row_once(tmp_path, make_study):
    """Two drivers, one trial store: the row both hold trains once, the other run waits."""
    from tests.conftest import start_ablate

    one, two = make_study("one"), make_study("two")
    drivers = [start_ablate("run", str(path), cwd=tmp_path) for path in (one, two)]
    outs = [driver.communicate(timeout=600)[0] for driver in drivers]
    assert [d.returncode for d in drivers] == [0, 0], "\n".join(outs)
    tags = [
        _trials(tmp_path, name)[1]["full-synthetic_n32_size8-s0"].data.tags
        for name in ("one", "two")
    ]
    origins = sorted(t.get(schema.REUSED_FROM, "") for t in tags)
    assert origins[0] == "" and origins[1] in {
        "one/full-synthetic_n32_size8-s0 (publisher's claim)",
        "two/full-synthetic_n32_size8-s0 (publisher's claim)",
    }, origins
