"""`ablate run` with a declared question, end to end: real Ray, real MLflow, seeds by looks.

Three studies of the test-only method ``synthetic_effect`` (:mod:`tests.sequential_method`),
whose ACC is set by its config: a true effect, no effect, and an effect near δ with more
noise. Each must end with the right verdict, at the look the rule predicts from the per-seed
values MLflow holds, with no seed beyond that look.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis.decisions import Question, decide_runs
from analysis.loading import load_mlflow
from tests.conftest import run_ablate

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOOKS = [6, 9, 12]
#: effect, noise, δ, the verdict the design makes (near-certain at these seeds)
SCENARIOS = {
    "seq_effect": (0.15, 0.02, 0.03, "better"),
    "seq_none": (0.0, 0.02, 0.03, "within"),
    "seq_near": (0.03, 0.05, 0.05, "undecided"),
}


def _write(folder: Path, name: str, effect: float, noise: float, delta: float) -> Path:
    document = {
        "name": name,
        "method": "synthetic_effect",
        "datasets": [{"name": "synthetic", "n": 400, "size": 8}],
        "seeds": list(range(LOOKS[0])),
        "base": {"noise": noise},
        "variants": {"full": {"stream": 0}, "ablated": {"effect": effect, "stream": 1}},
        "baselines": ["pixels"],
        "analysis": {"decide": {"delta": delta, "looks": LOOKS}},
        "resources": {"cpus": 1, "max_concurrent": 2},
        "tracking": {"uri": f"sqlite:///{folder}/mlflow.db"},
        "run": {"storage": f"{folder}/results"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    """The driver's environment: the test-only method registered, in every Ray worker too."""
    return {
        **os.environ,
        "ABLATE_METHOD_MODULES": "tests.sequential_method",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def _ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_ablate(*args, cwd=cwd, timeout=600, env=_env())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_study_runs_look_by_look_to_the_verdict_the_rule_predicts(
    tmp_path: Path, name: str
) -> None:
    effect, noise, delta, expected = SCENARIOS[name]
    path = _write(tmp_path, name, effect, noise, delta)
    done = _ablate("run", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    runs = load_mlflow(f"sqlite:///{tmp_path}/mlflow.db", [name], best_epoch=False)
    question = Question("acc", "full", ("ablated",), delta, 0.05, tuple(LOOKS), tuple(range(12)))
    own = runs[runs["variant"] != "pixels"]
    (decision,) = decide_runs(own, question).values()  # reached: every look whose seeds exist
    (row,) = decision.rows
    assert row.verdict == expected, (row, done.stdout[-2000:])
    seeds = {v: sorted(runs[runs["variant"] == v]["seed"]) for v in ("full", "ablated", "pixels")}
    used = LOOKS[row.look - 1]
    assert seeds["ablated"] == seeds["full"] == list(range(used))  # no seed past the stop
    assert seeds["pixels"] == list(range(LOOKS[0]))  # baselines: the first look, fixed n
    printed = f"ablated: {_words(row.verdict, delta, used)} (look {row.look}, {used} seeds)"
    assert printed in done.stdout, done.stdout[-2000:]

    if name == "seq_near":  # the status, and a run of the finished study (one Ray start each)
        status = _ablate("status", str(path), cwd=tmp_path)
        assert f"sequential rule: look {row.look} of 3 analysed" in status.stdout
        assert f"ablated: {_status_word(row.verdict)} at look {row.look} ({used} seeds)" in (
            status.stdout
        )

        # run again: every look is found finished, nothing trains, the same verdict comes back
        again = _ablate("run", str(path), cwd=tmp_path)
        assert again.returncode == 0
        assert "nothing to train" in again.stdout and printed in again.stdout
        assert len(load_mlflow(f"sqlite:///{tmp_path}/mlflow.db", [name], best_epoch=False)) == len(
            runs
        )

    if name == "seq_none":  # the same rule offline, on the runs: the same stop and verdict
        replay = _ablate(
            "stats",
            name,
            "--paired",
            "--control",
            "full",
            "--looks",
            "6,9,12",
            "--delta",
            str(delta),
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            cwd=tmp_path,
        )
        assert replay.returncode == 0, replay.stderr
        assert printed in replay.stdout
        out = tmp_path / "report"
        report = _ablate("report", str(path), "--format", "md", "--out", str(out), cwd=tmp_path)
        assert report.returncode == 0, report.stderr
        assert printed in report.stdout and printed in (out / "verdicts.txt").read_text()
        table = (out / "ablation.md").read_text()
        assert "= within ±δ (δ = 0.03)" in table and "In ACC the marks are the sequential" in table


def _words(verdict: str, delta: float, seeds: int) -> str:
    return {"within": f"within ±{delta:g}", "undecided": f"undecided at {seeds} seeds"}.get(
        verdict, verdict
    )


def test_a_driver_stopped_in_a_later_look_goes_on_at_that_look(tmp_path: Path) -> None:
    """SIGTERM to the driver's group during look 2; run again: look 2 resumes, then look 3."""
    import signal

    effect, noise, delta, expected = SCENARIOS["seq_near"]
    path = _write(tmp_path, "seq_near", effect, noise, delta)
    env = _env()
    driver = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "run", str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert driver.stdout is not None
    seen = []
    for line in driver.stdout:
        seen.append(line)
        if "started" in line and "seq_near-look2" in "".join(seen):
            break  # a trial of look 2 is running
    os.killpg(driver.pid, signal.SIGTERM)
    rest = driver.communicate(timeout=120)[0]
    assert driver.returncode == 143, "".join(seen) + rest
    assert "(look 1, 6 seeds)" in "".join(seen)  # look 1 was analysed before look 2 began

    again = _ablate("run", str(path), cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "already finished: 18 trials, nothing to train" in again.stdout  # look 1 with pixels
    assert "resuming study 'seq_near-look2'" in again.stdout
    runs = load_mlflow(f"sqlite:///{tmp_path}/mlflow.db", ["seq_near"], best_epoch=False)
    assert (runs["status"] == "FINISHED").all()
    question = Question("acc", "full", ("ablated",), delta, 0.05, tuple(LOOKS), tuple(range(12)))
    (decision,) = decide_runs(runs[runs["variant"] != "pixels"], question).values()
    (row,) = decision.rows
    used = LOOKS[row.look - 1]
    for variant in ("full", "ablated"):  # one run per seed: nothing trained twice or skipped
        assert sorted(runs[runs["variant"] == variant]["seed"]) == list(range(used))
    assert row.verdict == expected


def _status_word(verdict: str) -> str:
    return {"within": "within ±δ", "continue": "open"}.get(verdict, verdict)
