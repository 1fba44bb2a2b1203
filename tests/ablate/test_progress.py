"""Progress of a study from recorded epoch reports, on a fake clock: ETA arithmetic, the plain
mode's throttling, a failed trial's line, and the live table's rows."""

import io
import re

import pytest

from ablate.progress import LiveProgress, PlainProgress, StudyProgress, duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _study(clock, trials=4, epochs=10, concurrency=None):
    return StudyProgress(trials, trials * epochs, "acc", "max", concurrency, clock)


def test_trial_and_study_eta_come_from_measured_epoch_times():
    clock = FakeClock()
    study = _study(clock, trials=4, epochs=10, concurrency=2)
    study.start("a", 10)
    study.start("b", 10)
    assert study.eta_s() is None and "study ETA ?" in study.study_line()
    for epoch in (1, 2):
        clock.now += 60  # a: 60 s an epoch
        study.report("a", {"epoch": epoch, "loss": 5.0 - epoch, "acc": 0.5 + epoch / 10})
    clock.now += 60
    study.report("b", {"epoch": 1, "acc": 0.4})  # b: 180 s for its first epoch
    a = study.trials["a"]
    assert a.seconds_per_epoch == 60 and a.eta_s() == 8 * 60
    assert study.trials["b"].eta_s() == 9 * 180
    # 40 planned epochs, 3 done; mean pace (60 + 180) / 2 = 120 s; two at once
    assert study.eta_s() == pytest.approx(37 * 120 / 2)
    assert study.study_line() == (
        "0/4 done, 2 running, 0 failed, 2 pending; best acc 0.700 (a); study ETA 37 min"
    )


def test_ended_trials_count_their_planned_epochs_and_concurrency_defaults_to_the_most_seen():
    clock = FakeClock()
    study = _study(clock, trials=3, epochs=4)
    for name in "ab":
        study.start(name, 4)
    clock.now += 10
    study.report("a", {"epoch": 1})
    study.fail("a", "NonFiniteLossError: loss is nan")
    study.report("b", {"epoch": 1})
    # a's 4 epochs will not run: 12 planned - 4 (a) - 1 (b) = 7 left, at 10 s, 2 at once
    assert study.eta_s() == pytest.approx(7 * 10 / 2)
    study.finish("b")
    assert study.study_line().startswith("1/3 done, 0 running, 1 failed, 1 pending")


def test_a_retried_trial_runs_again_and_paces_from_its_restart():
    clock = FakeClock()
    study = _study(clock)
    study.start("a", 10)
    clock.now += 5
    study.report("a", {"epoch": 1})
    study.fail("a", "worker died")
    clock.now += 3600  # waited for resources
    study.start("a", 10)
    clock.now += 5
    study.report("a", {"epoch": 2})
    assert study.trials["a"].state == "running" and study.trials["a"].epoch_seconds == [5, 5]


def test_plain_mode_writes_a_trial_at_most_every_n_seconds_but_its_last_epoch_always():
    clock = FakeClock()
    study = _study(clock, trials=1, epochs=5)
    lines: list[str] = []
    plain = PlainProgress(study, lines.append, every_s=30)
    plain.event("started a")
    study.start("a", 5)
    for epoch in range(1, 6):
        clock.now += 12
        plain.epoch(study.report("a", {"epoch": epoch, "loss": 1.0, "stage_name": "train"}))
    epochs = [line for line in lines if line.startswith("  a:")]
    # epoch 1 (first), epoch 4 (36 s after 1), epoch 5 (the last)
    assert [line.split(" epoch ")[1].split(",")[0] for line in epochs] == ["1/5", "4/5", "5/5"]
    assert epochs[0] == ("  a: train epoch 1/5, loss 1.0000, acc -, - images/s, -, ETA 48 s")
    study.fail("a", "NonFiniteLossError: loss is nan at epoch 5")
    plain.event("FAILED a: NonFiniteLossError: loss is nan at epoch 5")
    assert lines[-1] == (
        "[0/1 done, 0 running, 1 failed, 0 pending] FAILED a: NonFiniteLossError: loss is nan "
        "at epoch 5"
    )


def test_live_table_shows_a_row_per_running_trial():
    clock = FakeClock()
    study = _study(clock, trials=2, epochs=3)
    stream = io.StringIO()
    live = LiveProgress(study, stream)
    study.start("alpha", 3)
    study.start("beta", 3)
    clock.now += 20
    trial = study.report(
        "alpha", {"epoch": 1, "loss": 2.5, "acc": 0.61, "images_per_s": 88.0, "stage_name": "train"}
    )
    live.epoch(trial)
    from rich.console import Console

    rendered = io.StringIO()
    Console(file=rendered, width=120).print(live._table())
    text = rendered.getvalue()
    assert "alpha" in text and "beta" in text and "1/3" in text and "0.610" in text
    assert "88.0" in text and "40 s" in text  # alpha's ETA: 2 epochs at 20 s
    gpu = study.report("beta", {"epoch": 1, "peak_memory_mb": 2048.0, "gpu_utilisation": 87.0})
    assert study.trial_cells(gpu)[6] == "2048 MiB, GPU 87 %"  # NVML's share, on CUDA only
    study.finish("alpha")
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(live._table())
    assert "alpha" not in rendered.getvalue().split("┃")[-1]  # only running trials have rows
    live.event("finished alpha")
    live.close()
    assert "finished alpha" in stream.getvalue()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (42, "42 s"), (600, "10 min"), (3 * 3600, "3.0 h"), (3 * 86400, "3.0 d")],
)
def test_durations_read_at_a_glance(seconds, text):
    assert duration(seconds) == text


def test_a_study_run_on_a_terminal_shows_a_live_row_per_running_trial(tmp_path, make_study):
    """``ablate run`` under a real pseudo-terminal (``script``) draws the table, epoch by epoch."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    path = make_study("live", base={"epochs": 3}, variants=None, resources={"max_concurrent": None})
    ablate = Path(sys.executable).with_name("ablate")
    assert shutil.which("script"), "util-linux's script gives the run a terminal"
    done = subprocess.run(
        ["script", "-qec", f"{ablate} run {path}", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**__import__("os").environ, "COLUMNS": "160"},
    )
    out = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", done.stdout).replace("\r", "\n")
    assert done.returncode == 0, out[-2000:]
    assert "img/s" in out and "ETA" in out  # the table's header
    trial = "default-synthetic_n32_size8-s0"
    rows = {line for line in out.splitlines() if line.startswith(f"│ {trial}")}
    for epoch in ("1/3", "2/3", "3/3"):  # a row redrawn at every epoch
        assert any(f"│ train │   {epoch} │" in row and "MiB" in row for row in rows), rows
    assert f"started {trial}" in out and f"finished {trial}" in out
    assert "1 trial of cc" in out and "1 trial finished, 0 failed" in out


def test_a_callback_restored_on_resume_takes_this_drivers_display_and_measures_afresh():
    """Tune unpickles its callbacks when a study resumes, pickled by another driver."""
    import pickle

    from ablate.progress_callback import Display, ProgressCallback

    clock = FakeClock()
    study = _study(clock, trials=1, epochs=4)
    callback = ProgressCallback(study, Display(live=True, every_s=5.0))
    study.start("a", 4)
    clock.now += 10
    study.report("a", {"epoch": 1})
    restored = pickle.loads(pickle.dumps(callback))
    assert restored.display == Display()  # nobody's terminal: plain lines
    lines: list[str] = []
    restored.display = Display(live=False, every_s=60.0, printer=lines.append)
    restored.progress.clock = clock
    clock.now += 7200  # the study waited two hours for its next driver
    trial = restored.progress.report("a", {"epoch": 2})
    assert trial.epoch_seconds == [10]  # not a two-hour epoch
    restored.view.epoch(trial)
    assert lines and lines[-1].startswith("  a: ")  # this driver's printer, plain mode
    restored.close()


def _one_report(config):
    from ray import tune

    tune.report({"epoch": 1})


def test_a_tuner_restored_by_ray_gets_this_drivers_display(tmp_path, local_ray):
    """attach_display reaches the callbacks Ray unpickled (a private accessor: checked here)."""
    from ray import tune

    from ablate.progress_callback import Display, ProgressCallback, attach_display
    from ablate.study import RunSettings
    from tests.ablate.test_trial_key import SPEC

    first = ProgressCallback(StudyProgress(1, 1, "acc", "max", 1), Display(every_s=1.0))
    run_config = tune.RunConfig(name="restored", storage_path=str(tmp_path), callbacks=[first])
    trial = {"spec": SPEC.to_dict(), "run": RunSettings().model_dump()}  # what ablate passes
    tune.Tuner(_one_report, param_space=trial, run_config=run_config).fit()
    tuner = tune.Tuner.restore(str(tmp_path / "restored"), trainable=_one_report)
    mine = Display(every_s=60.0, printer=print)
    (restored,) = attach_display(tuner, mine)
    assert restored is not first and restored.display is mine


def test_replayed_trials_count_neither_in_the_pace_nor_in_the_work_left():
    """10 trials of 100 epochs, 6 of them done already: 4 to train, at 60 s an epoch."""
    clock = FakeClock()
    expected = {f"r{i}": 100 for i in range(6)}
    study = StudyProgress(10, 1000, "acc", "max", 1, clock, replays=expected)
    study.start("t0", 100)
    clock.now += 60
    study.report("t0", {"epoch": 1})
    for name in ("r0", "r1"):  # replayed: 100 epochs in a blink
        study.start(name, 100)
        for epoch in range(1, 101):
            clock.now += 0.001
            study.report(name, {"epoch": epoch, "reused_from": "other/study"})
        study.finish(name)
    assert study.trials["r0"].replayed and not study.trials["r0"].epoch_seconds
    # 4 trained trials of 100 epochs, 1 epoch done: 399 epochs at 60 s
    assert study.eta_s() == pytest.approx(399 * 60)
    # a trial expected to replay that trains instead (its store folder was refused) counts
    study.start("r2", 100)
    clock.now += 60
    study.report("r2", {"epoch": 1})
    assert study.eta_s() == pytest.approx(498 * 60)
