"""A FIFO (or a link) planted in the trial store under a trial's key is refused unread: it
used to hang `plan`, `status` and `run` (open() on a FIFO waits for a writer forever)."""

import os

import pytest

from ablate.keyed_store import MANIFEST_FILE, STATE_FILE
from ablate.replay_checks import RefusedReplay, copy_published, read_manifest
from ablate.study_file import load_study
from ablate.trial_keys import trial_keys, trial_store_root
from tests.conftest import run_ablate
from tests.fifos import without_hanging


def test_copying_or_reading_a_published_folder_refuses_a_fifo_at_once(tmp_path):
    folder, target = tmp_path / "key", tmp_path / "copy"
    folder.mkdir()
    target.mkdir()
    os.mkfifo(folder / STATE_FILE)
    os.mkfifo(folder / MANIFEST_FILE)
    fifos = [folder / STATE_FILE, folder / MANIFEST_FILE]
    copied = without_hanging(lambda: copy_published(folder, target), fifos)
    assert isinstance(copied.get("error"), RefusedReplay)
    assert "is not a regular file (a FIFO)" in str(copied["error"])
    read = without_hanging(lambda: read_manifest(folder), fifos)
    assert isinstance(read.get("error"), RefusedReplay)
    (folder / MANIFEST_FILE).unlink()
    (folder / MANIFEST_FILE).symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"key": "x"}')
    with pytest.raises(RefusedReplay, match=r"is not a regular file \(a symbolic link\)"):
        read_manifest(folder)


def test_plan_and_status_name_a_fifo_in_the_store_and_answer(tmp_path, make_study):
    path = make_study("fifo", seeds=[0, 1])
    study = load_study(path)
    keys = trial_keys(study).hashed()
    planted = trial_store_root(study.run) / keys["full-synthetic_n32_size8-s0"]
    planted.mkdir(parents=True)
    os.mkfifo(planted / MANIFEST_FILE)
    os.mkfifo(planted / STATE_FILE)
    plan = run_ablate("plan", str(path), cwd=tmp_path, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert (
        f"warning: full-synthetic_n32_size8-s0: trial store folder {planted} refused "
        f"({MANIFEST_FILE} is not a regular file (a FIFO)): counted as to train"
    ) in plan.stdout
    assert "trials: 2;" in plan.stdout  # neither counted as replayed
    status = run_ablate("status", str(path), cwd=tmp_path, timeout=120)
    assert status.returncode == 0 and "no trial has started; 2 planned" in status.stdout


def test_plan_warns_of_a_trial_store_that_others_may_write(tmp_path, make_study, capsys):
    """The store's write access is the boundary of what a replay can trust: a store made
    group- or world-writable (or another user's) is named before launch."""
    from ablate.cli import main

    path = make_study("exposed")
    store = trial_store_root(load_study(path).run)
    store.mkdir(parents=True)
    store.chmod(0o777)
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"warning: trial store {store} is writable by group and others (mode 777): whoever "
        "can write it can plant results that replay as this study's"
    ) in out
    store.chmod(0o700)
    if os.geteuid() == 0:  # root may give it away, as a shared cluster's admin would
        os.chown(store, 12345, -1)
        assert main(["plan", str(path)]) == 0
        assert f"{store} is owned by uid 12345, not by you (0)" in capsys.readouterr().out
        os.chown(store, 0, -1)
    assert main(["plan", str(path)]) == 0
    assert "warning: trial store" not in capsys.readouterr().out
