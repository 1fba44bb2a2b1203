"""`ablate run` end to end on real Ray (local), real MLflow (SQLite) and torch on CPU."""

import numpy as np
import pytest
from mlflow import MlflowClient

from ablate.cli import main
from tests.conftest import write_study

pytestmark = pytest.mark.slow

STUDY = """\
name: e2e
method: cc
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0, 1]
base: {{backbone: resnet18, image_size: 8, epochs: 3, batch_size: 16}}
variants:
  full: {{}}
  no_cluster: {{loss.cluster: false, loss.entropy: false}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""

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
    return client, [r for r in runs if r.data.tags.get("ablate.role") != "study"]


def test_study_lands_in_mlflow_with_every_epoch_and_resumes_to_nothing(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "e2e", STUDY)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 trials finished, 0 failed" in out and "mlflow ui --backend-store-uri" in out
    assert "full " in out and "no_cluster " in out  # the summary table

    client, runs = _runs(tmp_path, "e2e")
    parents = [r for r in runs if r.data.tags.get("ablate.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("ablate.role") != "study"]
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
        if run.data.tags.get("ablate.role") != "study":
            assert len(client.get_metric_history(run.info.run_id, "loss")) == 3

    # resume takes up edits of what reports say, and names the edits it cannot apply
    text = path.read_text()
    path.write_text(text + "description: edited\nanalysis: {test: ttest}\n")
    assert main(["run", str(path)]) == 0
    assert "already finished" in capsys.readouterr().out
    for edit, key, was in [
        ('run: {{storage: "{root}/results", max_retries: 3}}', "run.max_retries", "1"),
        ('tracking: {{uri: "sqlite:///{root}/other.db"}}', "tracking.uri", "'sqlite:///"),
    ]:
        line = next(x for x in text.splitlines() if x.startswith(key.split(".")[0] + ":"))
        path.write_text(text.replace(line, edit.format(root=tmp_path).replace("{{", "{")))
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{key} changed since the study's results" in err and f"({key} was {was}" in err
        assert "it accepts edits of description, reference, analysis only" in err


FAILING = """\
name: failing
method: cc
datasets:
  - {{name: synthetic, n: 32, size: 8}}
  - {{name: cifar10, root: "{root}/no-such-data"}}
seeds: [0]
base: {{backbone: resnet18, image_size: 8, epochs: 2, batch_size: 16}}
variants:
  ok: {{}}
  nan: {{optim.name: sgd, optim.lr: 1.0e+12}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results", max_retries: 0}}
"""


def test_crashing_and_nan_trials_fail_with_reasons_while_others_finish(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "failing", FAILING)
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


OPTUNA = """\
name: tpe
method: cc
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0, 1]
base: {{backbone: resnet18, image_size: 8, epochs: 2, batch_size: 16}}
search:
  algorithm: optuna
  num_samples: 2
  metric: acc
  space:
    optim.lr: {{distribution: loguniform, low: 0.0001, high: 0.01}}
    tau_instance: {{values: [0.2, 0.5]}}
scheduler: {{type: asha, grace_period: 1, reduction_factor: 2}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def test_optuna_search_runs_each_sample_on_every_seed(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "tpe", OPTUNA)
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


DATA_PARALLEL = """\
name: ddpWORKERS
method: cc
datasets: [{{name: synthetic, n: 64, size: 8}}]
seeds: [0]
base:
  backbone: resnet18
  image_size: 32
  epochs: 3
  batch_size: 16
  optim: {{name: sgd, lr: 0.001}}
resources: {{cpus: 0.5, workers: WORKERS}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def _history(client, run_id, key):
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_two_worker_trial_logs_what_the_one_worker_trial_logs(tmp_path, local_ray, capsys):
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
        path = write_study(
            tmp_path, f"ddp{workers}", DATA_PARALLEL.replace("WORKERS", str(workers))
        )
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
    again = DATA_PARALLEL.replace("WORKERS", "2").replace("name: ddp2", "name: ddp2_again")
    assert main(["run", str(write_study(tmp_path, "ddp2_again", again))]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 trial done already" in out and "1 trial finished, 0 failed" in out
    _, (replayed,) = _trial_runs(tmp_path, "ddp2_again")
    assert replayed.data.tags["ablate.reused_from"] == f"ddp2/{runs[2].info.run_name}"
    for key in ("loss", "loss_instance", "steps"):
        assert _history(client, replayed.info.run_id, key) == _history(client, two, key), key
    assert {a.path for a in client.list_artifacts(replayed.info.run_id)} == {
        "config.yaml",
        "assignments.npy",
    }


GACL = """\
name: gacl_tiny
method: gacl
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0]
base: {{image_size: 8, epochs: 2, batch_size: 16, knn_k: 3}}
variants:
  full: {{}}
  no_graph: {{loss.graph: false}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def test_gacl_runs_land_in_mlflow_with_each_term(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "gacl_tiny", GACL)
    assert main(["run", str(path)]) == 0
    assert "2 trials finished, 0 failed" in capsys.readouterr().out
    client, trials = _trial_runs(tmp_path, "gacl_tiny")
    by_variant = {r.data.tags["ablate.variant"]: r for r in trials}
    terms = {f"loss_{t}" for t in ("aug", "near", "intra", "inter", "graph", "entropy")}
    assert terms <= set(by_variant["full"].data.metrics)
    assert terms - {"loss_graph"} <= set(by_variant["no_graph"].data.metrics)
    assert "loss_graph" not in by_variant["no_graph"].data.metrics
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_aug")]
        assert sorted(steps) == [1, 2] and run.data.params["method"] == "gacl"


GCC = """\
name: gcc_tiny
method: gcc
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0]
base: {{image_size: 8, epochs: 2, batch_size: 16, knn_k: 3, warmup_epochs: 1, graph_every: 1}}
variants:
  full: {{}}
  no_cr: {{loss.cr: false}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def test_gcc_runs_land_in_mlflow_with_warm_up_then_graph_terms(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "gcc_tiny", GCC)
    assert main(["run", str(path)]) == 0
    assert "2 trials finished, 0 failed" in capsys.readouterr().out
    client, trials = _trial_runs(tmp_path, "gcc_tiny")
    by_variant = {r.data.tags["ablate.variant"]: r for r in trials}
    assert set(by_variant) == {"full", "no_cr"}
    for variant, run in by_variant.items():
        history = {
            name: [m.step for m in client.get_metric_history(run.info.run_id, name)]
            for name in ("loss_rgc", "loss_agc", "loss_cr", "acc")
        }
        assert history["loss_rgc"] == [1, 2] and history["acc"] == [1, 2]
        assert history["loss_agc"] == [2]  # epoch 1 is the SimCLR warm-up
        assert history["loss_cr"] == ([2] if variant == "full" else [])
        assert run.data.params["method"] == "gcc" and run.data.params["preset"] == "code"


CCES = """\
name: cces_tiny
method: cces
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0]
base: {{backbone: resnet18, image_size: 8, epochs: 2, batch_size: 16, support_size: 24}}
variants:
  ccrop_double: {{}}
  rcrop_none: {{crop: random, nn.instance: false, nn.cluster: false}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def test_cces_runs_land_in_mlflow_with_their_switches(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "cces_tiny", CCES)
    assert main(["run", str(path)]) == 0
    assert "2 trials finished, 0 failed" in capsys.readouterr().out
    client, trials = _trial_runs(tmp_path, "cces_tiny")
    by_variant = {r.data.tags["ablate.variant"]: r for r in trials}
    assert set(by_variant) == {"ccrop_double", "rcrop_none"}
    params = by_variant["rcrop_none"].data.params
    assert (params["crop"], params["nn.instance"], params["nn.cluster"]) == (
        "random",
        "False",
        "False",
    )
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_instance")]
        assert steps == [1, 2] and run.data.params["method"] == "cces"
        assert {"acc", "nmi", "ari", "loss_cluster", "loss_entropy"} <= set(run.data.metrics)


GHDCC = """\
name: ghdcc_tiny
method: ghdcc
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0]
base: {{backbone: resnet18, image_size: 8, epochs: 2, batch_size: 16, eval_graph_batch: 16}}
variants:
  full: {{}}
  mlp_no_interpolation: {{projector: mlp, interpolation: false, graph.mode: concatenated}}
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def test_ghdcc_runs_land_in_mlflow_with_their_terms(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "ghdcc_tiny", GHDCC)
    assert main(["run", str(path)]) == 0
    assert "2 trials finished, 0 failed" in capsys.readouterr().out
    client, trials = _trial_runs(tmp_path, "ghdcc_tiny")
    by_variant = {r.data.tags["ablate.variant"]: r for r in trials}
    assert set(by_variant) == {"full", "mlp_no_interpolation"}
    for variant, run in by_variant.items():
        params, metrics = run.data.params, set(run.data.metrics)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss_mse")]
        assert steps == [1, 2] and params["method"] == "ghdcc"
        assert {"acc", "nmi", "ari", "loss_instance", "loss_cluster"} <= metrics
        assert ("loss_ce" in metrics) == (variant == "full")
    assert by_variant["mlp_no_interpolation"].data.params["projector"] == "mlp"
    assert by_variant["full"].data.params["graph.mode"] == "mixed"


NNCC = """\
name: NAME
method: nncc
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0]
base:
  backbone: resnet18
  image_size: 8
  epochs: 1
  batch_size: 16
  num_augs: 2
  pretext: {{epochs: 2, batch_size: 16}}
variants:
VARIANTS
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def _nncc_study(name, variants):
    return NNCC.replace("NAME", name).replace("VARIANTS", variants)


def test_nncc_trials_share_one_pretext_across_trials_and_studies(tmp_path, local_ray, capsys):
    """Two trials start together: one trains the pretext, the other waits and restores it; a
    later study with the same pretext settings restores it too. MLflow says which did what."""
    variants = "  nncc: {{}}\n  no_finch: {{finch.enabled: false}}"
    first = write_study(tmp_path, "nncc_a", _nncc_study("nncc_a", variants))
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

    later = write_study(tmp_path, "nncc_b", _nncc_study("nncc_b", "  t1: {{num_augs: 1}}"))
    assert main(["run", str(later)]) == 0
    _, (run,) = _trial_runs(tmp_path, "nncc_b")
    assert run.data.tags["ablate.stage_cache.pretext"] == notes[0].replace("published", "reused")


BASELINES = """\
name: baselines
method: cc
datasets: [{{name: synthetic, n: 32, size: 8}}]
seeds: [0, 1]
base: {{backbone: cnn4, image_size: 8, epochs: 2, batch_size: 16}}
variants:
  full: {{}}
baselines: [pixels, untrained]
resources: {{cpus: 1, max_concurrent: 2}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def test_baseline_rows_run_beside_the_method_and_rank_among_its_rows(tmp_path, local_ray, capsys):
    path = write_study(tmp_path, "baselines", BASELINES)
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
