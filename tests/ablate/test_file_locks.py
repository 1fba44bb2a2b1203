"""A file system that cannot lock fails at once with its path; locks local to one host warn."""

import errno

import pytest

from ablate import driver_lock, keyed_store
from ablate.cli import main
from ablate.file_locks import LockUnsupportedError, local_lock_warning
from ablate.keyed_store import Busy, Claimed, KeyedStore


def _refusing(code):
    def lock(*args, **kwargs):
        raise OSError(code, "No locks available" if code == errno.ENOLCK else "held")

    return lock


def test_a_driver_on_a_file_system_without_locks_exits_2_naming_the_file(
    tmp_path, make_study, monkeypatch, capsys
):
    path = make_study("nolocks")
    monkeypatch.setattr(driver_lock.fcntl, "lockf", _refusing(errno.ENOLCK))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    lock = tmp_path / "results" / "nolocks" / ".driver.lock"
    assert err.startswith(f"ablate run: this file system cannot lock {lock} (No locks available)")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_status_of_such_a_study_says_the_same(tmp_path, make_study, monkeypatch, capsys):
    path = make_study("nolocks")
    (tmp_path / "results" / "nolocks").mkdir(parents=True)
    (tmp_path / "results" / "nolocks" / ".driver.lock").write_text("")
    monkeypatch.setattr(driver_lock.fcntl, "lockf", _refusing(errno.ENOLCK))
    assert main(["status", str(path)]) == 2
    assert "this file system cannot lock" in capsys.readouterr().err


def test_claims_wait_only_for_a_holder_and_fail_on_a_file_system_without_locks(
    tmp_path, monkeypatch
):
    store = KeyedStore(tmp_path / "trials", {}, owner="s/t")
    monkeypatch.setattr(keyed_store.fcntl, "flock", _refusing(errno.EWOULDBLOCK))
    assert store.look({"k": 1}) == Busy()
    monkeypatch.setattr(keyed_store.fcntl, "flock", _refusing(errno.ENOLCK))
    with pytest.raises(LockUnsupportedError, match=r"cannot lock .*\.claim"):
        store.look({"k": 1})
    monkeypatch.undo()
    assert store.look({"k": 1}) == Claimed()  # a real lock: claimed


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /mnt/shared nfs4 rw,vers=4.2,hard,proto=tcp 0 0
server:/old /mnt/old nfs rw,vers=3,nolock,proto=tcp 0 0
server:/flock /mnt/flock nfs4 rw,vers=4.1,local_lock=all 0 0
"""


@pytest.mark.parametrize(
    "path,flag",
    [
        ("/mnt/shared/results", None),
        ("/mnt/old/results/study", "nolock"),
        ("/mnt/flock/x", "local_lock=all"),
        ("/home/me/results", None),
    ],
)
def test_a_share_whose_locks_stay_on_this_machine_is_warned_about(path, flag):
    warning = local_lock_warning(path, MOUNTS)
    if flag is None:
        assert warning is None
    else:
        assert f"with {flag}: its locks hold on this machine only" in warning
