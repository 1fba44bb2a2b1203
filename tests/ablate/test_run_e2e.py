"""`ablate run` end to end on real Ray (local), real MLflow (SQLite) and torch on CPU."""

import numpy as np
import pytest
from mlflow import MlflowClient

from ablate.cli import main
from analysis import run_schema as schema

ABLATION = {"full": {}, "no_cluster": {"loss.cluster": False, "loss.entropy": False}}

EPOCH_METRICS = {
    "loss",
    "loss_instance",
    "epoch",
    "epoch_time_s",
    "images_per_s",
    "lr",
    "acc",
    "nmi",
    "ari",
}


def _runs(root, experiment):
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def _trial_runs(root, experiment):
    client, runs = _runs(root, experiment)
    return client, [r for r in runs if r.data.tags.get(schema.ROLE) != "study"]


def test_study_lands_in_mlflow_with_every_epoch_and_resumes_to_nothing(
    tmp_path, make_study, local_ray, capsys
):
    path = make_study("e2e", seeds=[0, 1], base={"epochs": 3}, variants=ABLATION)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 trials finished, 0 failed" in out and "mlflow ui --backend-store-uri" in out
    assert "full " in out and "no_cluster " in out  # the summary table

    client, runs = _runs(tmp_path, "e2e")
    parents = [r for r in runs if r.data.tags.get(schema.ROLE) == "study"]
    trials = [r for r in runs if r.data.tags.get(schema.ROLE) != "study"]
    assert len(parents) == 1 and len(trials) == 4
    names = sorted(r.info.run_name for r in trials)
    assert names == sorted(
        f"{v}-synthetic_n32_size8-s{s}" for v in ("full", "no_cluster") for s in (0, 1)
    )
    for run in trials:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert (
            run.data.tags["ablate.study"] == "e2e" and "mlflow.source.git.commit" in run.data.tags
        )
        params = run.data.params
        assert params["method"] == "cc" and params["dataset"] == "synthetic_n32_size8"
        assert params["variant"] == run.data.tags["ablate.variant"] and params["epochs"] == "3"
        assert params["loss.cluster"] == str(run.data.tags["ablate.variant"] == "full")
        # every metric at every epoch, exactly once (two trials wrote concurrently)
        for key in EPOCH_METRICS:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == [1, 2, 3], (run.info.run_name, key, steps)
        assert {"final_acc", "final_nmi", "final_ari"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"config.yaml", "assignments.npy"}
        local = client.download_artifacts(run.info.run_id, "assignments.npy", str(tmp_path))
        assert np.load(local).shape == (32,)
    spans = sorted((r.info.start_time, r.info.end_time) for r in trials)
    assert any(
        a_end > b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)
    ), spans

    # running the finished study again trains nothing and adds nothing
    assert main(["run", str(path)]) == 0
    assert "already finished: 4 trials, nothing to train" in capsys.readouterr().out
    _, again = _runs(tmp_path, "e2e")
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
    for run in again:
        if run.data.tags.get(schema.ROLE) != "study":
            assert len(client.get_metric_history(run.info.run_id, "loss")) == 3

    # resume takes up edits of what reports say, and names the edits it cannot apply
    same = {"seeds": [0, 1], "base": {"epochs": 3}, "variants": ABLATION}
    make_study("e2e", **same, description="edited", analysis={"test": "ttest"})
    assert main(["run", str(path)]) == 0
    assert "already finished" in capsys.readouterr().out
    # in both directions: a key changed, a key added (it used to pass, and every trial
    # trained without it), a variant added (it used to exit 130 "interrupted" forever)
    for edit, said in [
        ({"run": {"max_retries": 3}}, "run.max_retries was 1, now 3"),
        ({"tracking": {"uri": f"sqlite:///{tmp_path}/other.db"}}, "tracking.uri was 'sqlite:///"),
        ({"base": {"epochs": 3, "optim.lr": 0.01}}, "base.optim.lr added (0.01)"),
        ({"variants": {**ABLATION, "sgd": {"optim.name": "sgd"}}}, "variants.sgd added ({'optim"),
        ({"seeds": [0]}, "seeds was [0, 1], now [0]"),
    ]:
        make_study("e2e", **{**same, **edit})
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert "the study changed since its results in" in err and said in err, err
        assert "a resume accepts edits of description, reference, analysis only" in err
        assert f"ablate run {path} --restart" in err and "Traceback" not in err

    # --restart starts it over as the file says: the earlier runs are deleted (restorable),
    # the unchanged trials replay from the trial store, the new variant's trials train
    make_study("e2e", **{**same, "variants": {**ABLATION, "sgd": {"optim.name": "sgd"}}})
    assert main(["run", str(path), "--restart"]) == 0
    out = capsys.readouterr().out
    assert "restarting study 'e2e': 5 MLflow runs of its earlier run deleted" in out
    assert "4 of 6 trials done already" in out and "6 trials finished, 0 failed" in out
    _, now = _trial_runs(tmp_path, "e2e")
    replayed = {r.info.run_name for r in now if schema.REUSED_FROM in r.data.tags}
    assert len(now) == 6 and replayed == set(names)  # only the sgd rows trained
    deleted = [client.get_run(r.info.run_id) for r in runs]
    assert {r.info.lifecycle_stage for r in deleted} == {"deleted"}
    assert main(["run", str(path)]) == 0  # and it resumes as the new study
    assert "already finished: 6 trials" in capsys.readouterr().out


def test_crashing_and_nan_trials_fail_with_reasons_while_others_finish(
    tmp_path, make_study, local_ray, capsys
):
    path = make_study(
        "failing",
        datasets=[
            {"name": "synthetic", "n": 32, "size": 8},
            {"name": "cifar10", "root": f"{tmp_path}/no-such-data"},
        ],
        variants={"ok": {}, "nan": {"optim.name": "sgd", "optim.lr": 1.0e12}},
        run={"max_retries": 0},
    )
    assert main(["run", str(path)]) == 1
    out = capsys.readouterr().out
    assert "1 trial finished, 3 failed" in out
    assert "FAILED nan-synthetic_n32_size8-s0" in out and "NonFiniteLossError" in out
    assert "DatasetNotFoundError" in out
    _, trials = _trial_runs(tmp_path, "failing")
    by_name = {r.info.run_name: r for r in trials}
    assert by_name["ok-synthetic_n32_size8-s0"].info.status == "FINISHED"
    nan = by_name["nan-synthetic_n32_size8-s0"]
    assert nan.info.status == "FAILED" and "loss is nan" in nan.data.tags["ablate.error"]
    for variant in ("ok", "nan"):
        crashed = by_name[f"{variant}-cifar10-s0"]
        assert crashed.info.status == "FAILED"
        assert "DatasetNotFoundError" in crashed.data.tags["ablate.error"]
        assert "no-such-data" in crashed.data.tags["ablate.error"]


def test_optuna_search_runs_each_sample_on_every_seed(tmp_path, make_study, local_ray, capsys):
    path = make_study(
        "tpe",
        seeds=[0, 1],
        variants=None,
        search={
            "algorithm": "optuna",
            "num_samples": 2,
            "metric": "acc",
            "space": {
                "optim.lr": {"distribution": "loguniform", "low": 0.0001, "high": 0.01},
                "tau_instance": {"values": [0.2, 0.5]},
            },
        },
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    assert main(["run", str(path)]) == 0
    assert "4 trials finished, 0 failed" in capsys.readouterr().out
    _, trials = _trial_runs(tmp_path, "tpe")
    assert len(trials) == 4
    points = {}
    for run in trials:
        lr, tau = float(run.data.params["optim.lr"]), run.data.params["tau_instance"]
        assert 1e-4 <= lr <= 1e-2 and tau in ("0.2", "0.5")
        points.setdefault((lr, tau), set()).add(run.data.params["seed"])
    assert len(points) == 2 and all(seeds == {"0", "1"} for seeds in points.values())
    for run in trials:  # TPE and ASHA chose by ACC: the runs say they were selected by labels
        assert run.data.tags["ablate.selection"] == "labels"
        assert run.data.tags["ablate.selection_metric"] == "acc"


def _data_parallel(make_study, name, workers):
    return make_study(
        name,
        datasets=[{"name": "synthetic", "n": 64, "size": 8}],
        base={"image_size": 32, "epochs": 3, "optim": {"name": "sgd", "lr": 0.001}},
        resources={"cpus": 0.5, "workers": workers, "max_concurrent": None},
    )


def _history(client, run_id, key):
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_two_worker_trial_logs_what_the_one_worker_trial_logs(
    tmp_path, make_study, local_ray, capsys
):
    """Same global batches, same steps per epoch, the same losses epoch by epoch.

    Float32 rounding (the ranks sum batch-norm statistics in another order) grows as training
    goes on: at lr 0.05 one worker in float32 is 2e-3 from float64 after 12 steps, and two
    workers as far (both equal to 1e-14 in float64: test_data_parallel.py). At this small
    learning rate it stays near 1e-5, while a trial whose ranks contrasted only their own
    rows would differ from the first step. The entropy term is a gap ``log C - H`` near 0:
    compared absolutely.
    """
    runs = {}
    for workers in (1, 2):
        path = _data_parallel(make_study, f"ddp{workers}", workers)
        assert main(["run", str(path)]) == 0
        assert "1 trial finished, 0 failed" in capsys.readouterr().out
        client, trials = _trial_runs(tmp_path, f"ddp{workers}")
        assert len(trials) == 1 and trials[0].info.status == "FINISHED"
        runs[workers] = trials[0]
    two = runs[2].info.run_id
    assert _history(client, two, "workers") == [2.0] * 3
    # 64 images / batch 16: 4 global batches an epoch, as one worker takes
    assert _history(client, two, "steps") == _history(client, runs[1].info.run_id, "steps")
    assert _history(client, two, "steps") == [4.0] * 3
    for key in ("loss", "loss_instance", "loss_cluster", "loss_entropy"):
        alone, both = _history(client, runs[1].info.run_id, key), _history(client, two, key)
        assert both == pytest.approx(alone, rel=1e-4, abs=1e-5), key
    assert runs[2].data.tags["ablate.data_parallel"] == (
        "exact: global batch over 2 workers, batch norm over the global batch"
    )
    assert "ablate.data_parallel" not in runs[1].data.tags
    assert {a.path for a in client.list_artifacts(two)} == {"config.yaml", "assignments.npy"}
    # the worker count is part of a trial's key: the 2-worker trial trained, and a later study
    # with the same row replays it without starting its workers
    assert "ablate.reused_from" not in runs[2].data.tags
    assert main(["run", str(_data_parallel(make_study, "ddp2_again", 2))]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 trial done already" in out and "1 trial finished, 0 failed" in out
    _, (replayed,) = _trial_runs(tmp_path, "ddp2_again")
    origin = replayed.data.tags["ablate.reused_from"]
    assert origin == f"ddp2/{runs[2].info.run_name} (publisher's claim)"
    for key in ("loss", "loss_instance", "steps"):
        assert _history(client, replayed.info.run_id, key) == _history(client, two, key), key
    assert {a.path for a in client.list_artifacts(replayed.info.run_id)} == {
        "config.yaml",
        "assignments.npy",
    }


def _nncc_study(make_study, name, variants):
    base = {"epochs": 1, "num_augs": 2, "pretext": {"epochs": 2, "batch_size": 16}}
    return make_study(name, method="nncc", base=base, variants=variants)


def test_nncc_trials_share_one_pretext_across_trials_and_studies(
    tmp_path, make_study, local_ray, capsys
):
    """Two trials start together: one trains the pretext, the other waits and restores it; a
    later study with the same pretext settings restores it too. MLflow says which did what."""
    variants = {"nncc": {}, "no_finch": {"finch.enabled": False}}
    first = _nncc_study(make_study, "nncc_a", variants)
    assert main(["run", str(first)]) == 0
    assert "2 trials finished, 0 failed" in capsys.readouterr().out
    client, trials = _trial_runs(tmp_path, "nncc_a")
    notes = sorted(r.data.tags["ablate.stage_cache.pretext"] for r in trials)
    assert [n.split()[0] for n in notes] == ["published", "reused"]
    assert len({n.split()[1] for n in notes}) == 1  # one key
    pretext_acc = set()
    for run in trials:
        acc = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "acc")}
        loss_steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        reused = run.data.tags["ablate.stage_cache.pretext"].startswith("reused")
        assert set(acc) == ({2, 3} if reused else {1, 2, 3})  # a reuser trains no pretext epoch
        assert loss_steps == ([3] if reused else [1, 2, 3])
        assert run.data.params["method"] == "nncc"
        pretext_acc.add(acc[2])
    assert len(pretext_acc) == 1  # the same pretext, the same k-means score

    later = _nncc_study(make_study, "nncc_b", {"t1": {"num_augs": 1}})
    assert main(["run", str(later)]) == 0
    _, (run,) = _trial_runs(tmp_path, "nncc_b")
    assert run.data.tags["ablate.stage_cache.pretext"] == notes[0].replace("published", "reused")


def test_baseline_rows_run_beside_the_method_and_rank_among_its_rows(
    tmp_path, make_study, local_ray, capsys
):
    path = make_study("baselines", seeds=[0, 1], baselines=["pixels", "untrained"])
    assert main(["run", str(path)]) == 0
    assert "6 trials finished, 0 failed" in capsys.readouterr().out
    client, trials = _trial_runs(tmp_path, "baselines")
    by_variant = {}
    for run in trials:
        by_variant.setdefault(run.data.tags["ablate.variant"], []).append(run)
    assert {v: len(r) for v, r in by_variant.items()} == {"full": 2, "pixels": 2, "untrained": 2}
    for run in by_variant["pixels"] + by_variant["untrained"]:
        assert run.info.status == "FINISHED" and run.data.tags["ablate.assignment"] == "kmeans"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "acc")] == [0]
        assert "final_acc" in run.data.metrics
    assert {r.data.params["method"] for r in by_variant["pixels"]} == {"kmeans"}
    assert {r.data.params["epochs"] for r in by_variant["untrained"]} == {"0"}
    assert {r.data.tags["ablate.assignment"] for r in by_variant["full"]} == {"argmax"}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    capsys.readouterr()
    assert main(["stats", "baselines", "--paired", "--control", "full", "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert "kmeans:pixels: n = 2" in printed and "cc:untrained: n = 2" in printed
