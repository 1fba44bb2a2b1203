"""A trial replays only a published trial of its own data, and only one that passes its checks.

End to end through `ablate run` (real Ray, real MLflow on SQLite), on Fashion-MNIST files
written in their official IDX format.
"""

import json

import numpy as np
from mlflow import MlflowClient

from ablate.cli import main
from ablate.keyed_store import MANIFEST_FILE
from ablate.study_file import load_study
from ablate.trial_keys import trial_keys, trial_store_root
from tests import dataset_fixtures as fx
from tests.conftest import study_file


def _study(root, name, data, seed=0):
    """One CC trial on the Fashion-MNIST files under ``root/data``."""
    return study_file(
        root,
        name,
        datasets=["fashion_mnist"],
        seeds=[seed],
        base={"image_size": 16, "epochs": 1, "batch_size": 32, "aug.flip_p": 0.0},
        resources={"max_concurrent": 1},
        run={"data_root": f"{root}/{data}"},
    )


def _run(root, experiment):
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    (run,) = [r for r in client.search_runs([found.experiment_id]) if "ablate.trial" in r.data.tags]
    return client, run


def _assignments(root, client, run):
    folder = root / "downloads" / run.info.run_id
    folder.mkdir(parents=True)
    return np.load(client.download_artifacts(run.info.run_id, "assignments.npy", str(folder)))


def _plant(folder, material, key, secret):
    """A folder such as a hostile neighbour would leave: right manifest, junk elsewhere."""
    folder.mkdir(parents=True)
    manifest = {"key": key, "material": material, "produced_by": "someone/else"}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, default=str))
    (folder / "state.pt").write_bytes(b"junk")
    (folder / "config.yaml").write_text("{}\n")
    (folder / "reports.jsonl").write_text(json.dumps({"epoch": 1.0, "acc": 0.99}) + "\n")
    (folder / "assignments.npy").symlink_to(secret)


def test_a_replay_needs_the_same_data_and_a_store_folder_that_passes_its_checks(
    tmp_path, local_ray, capsys
):
    fx.write_fashion_mnist(tmp_path / "small" / "fashion-mnist", n_train=40, n_test=24)
    fx.write_fashion_mnist(tmp_path / "large" / "fashion-mnist", n_train=60, n_test=40)
    assert main(["run", str(_study(tmp_path, "first", "small"))]) == 0
    client, first = _run(tmp_path, "first")
    assert _assignments(tmp_path, client, first).shape == (64,)

    # the same study on other files of the same data set: trained, on its own 100 images
    assert main(["run", str(_study(tmp_path, "second", "large"))]) == 0
    assert "done already" not in capsys.readouterr().out
    client, second = _run(tmp_path, "second")
    assert "ablate.reused_from" not in second.data.tags
    assert _assignments(tmp_path, client, second).shape == (100,)

    # a planted folder under the next trial's key: refused in one line, the trial trains
    third = _study(tmp_path, "third", "large", seed=1)
    keys = trial_keys(load_study(third))
    ((name, material),) = keys.materials.items()
    key = keys.hashed()[name]
    secret = tmp_path / "private.npy"
    np.save(secret, np.full(100, 7))
    store = trial_store_root(load_study(third).run)
    _plant(store / key, material, key, secret)
    assert main(["run", str(third)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "refused" in line]
    assert len(warnings) == 1, out
    assert f"trial store folder {store / key} refused" in warnings[0]
    assert "assignments.npy is not a regular file" in warnings[0]
    client, run = _run(tmp_path, "third")
    assert "ablate.reused_from" not in run.data.tags
    assert "assignments.npy is not a regular file" in run.data.tags["ablate.reuse_refused"]
    assert run.data.metrics["final_acc"] != 0.99
    assert not np.array_equal(_assignments(tmp_path, client, run), np.full(100, 7))
    # the refused folder is set aside and the key holds the trial that trained
    assert [p.name.split(".")[0] for p in (store / ".refused").iterdir()] == [key]
    assert json.loads((store / key / MANIFEST_FILE).read_text())["produced_by"].startswith("third/")

    # data rewritten in place with its size and times kept (`cp -p`, `rsync -a`, `touch -r`):
    # its fingerprint is computed again, so the trial trains on the new data; the cached
    # stamp of names, sizes and mtimes used to replay the other data's trial
    images = tmp_path / "same" / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    fx.write_fashion_mnist(images.parent, n_train=40, n_test=24)
    rng = np.random.default_rng(11)
    fx._write_idx(images, rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), compresslevel=0)
    assert main(["run", str(_study(tmp_path, "fourth", "same"))]) == 0
    capsys.readouterr()
    fx.rewrite_keeping_size_and_times(images, rng.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    assert main(["run", str(_study(tmp_path, "fifth", "same"))]) == 0
    assert "done already" not in capsys.readouterr().out
    _, fourth = _run(tmp_path, "fourth")
    _, fifth = _run(tmp_path, "fifth")
    assert "ablate.reused_from" not in fifth.data.tags
    assert fifth.data.tags["ablate.data_sha256"] != fourth.data.tags["ablate.data_sha256"]
