"""`ablate report` on a study's runs in a real MLflow store: the terminal summary, paper
names, the baseline group, figures with captions, LaTeX that compiles, and one HTML page
checked in a real headless Chromium."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ablate.cli import main
from tests.analysis.logged_runs import log_runs, store_folder

SEEDS = list(range(8))
DATASETS = ["digits_size16", "fashion_mnist_subset10000"]
ON, OFF = {"loss.cluster": "True"}, {"loss.cluster": "False"}


def _score(variant: str, dataset: str, seed: int, epoch: int) -> float:
    """The full model gains with epochs and beats every other row on every seed."""
    level = {"full": 0.80, "no_cluster": 0.74, "pixels": 0.60, "untrained": 0.30}[variant]
    level -= 0.05 * DATASETS.index(dataset)
    return level + 0.004 * seed + (0.01 * epoch if variant in ("full", "no_cluster") else 0.0)


@pytest.fixture(scope="module")
def reported() -> Iterator[dict[str, object]]:
    """A CC study of two data sets, 8 seeds and both baselines, reported once with --html."""
    with store_folder() as folder:
        yield _report(folder)


def _report(folder: Path) -> dict[str, object]:
    uri = f"sqlite:///{folder}/mlflow.db"
    study = {
        "name": "names",
        "description": "CC with and without its cluster head",
        "method": "cc",
        "datasets": [{"name": "digits", "size": 16}, {"name": "fashion_mnist", "subset": 10000}],
        "seeds": SEEDS,
        "variants": {"full": {}, "no_cluster": {"loss.cluster": False}},
        "baselines": ["pixels", "untrained"],
        "analysis": {"names": {"no_cluster": "w/o cluster head"}},
        "tracking": {"uri": uri},
    }
    path = folder / "names.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    rows = {
        "full": ("cc", ON),
        "no_cluster": ("cc", OFF),
        "pixels": ("kmeans", {}),
        "untrained": ("cc", ON),  # the untrained network keeps the full model's switches
    }
    log_runs(uri, "names", rows, DATASETS, SEEDS, _score)
    out = folder / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["report", str(path), "--out", str(out), "--html"]) == 0
    return {"path": path, "out": out, "printed": printed.getvalue(), "folder": folder}


def test_the_terminal_shows_the_table_the_verdicts_and_each_warning_once(reported):
    printed = str(reported["printed"])
    lines = printed.splitlines()
    assert lines[0] == "names: ablation"
    header = next(line for line in lines if "Digits (16 px)" in line)
    assert "Fashion-MNIST (10,000-image subset)" in header  # paper names over the metrics
    assert "╌" * 20 in printed  # the baseline group's rule
    baseline = next(line for line in lines if line.startswith("k-means (untrained network)"))
    assert "✓" not in baseline  # not ticked with the trained model's switches
    verdicts = [line for line in lines if line.startswith("  ") and "ACC" in line]
    assert len(verdicts) == 3 * 2  # three rows against full, on each data set
    cut = next(v for v in verdicts if v.strip().startswith("w/o cluster head on Digits"))
    assert "ACC -0.060 ▼" in cut and "(n = 8)" in cut
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == len(set(warnings)) <= 2
    files = printed[printed.index("files in ") :]
    assert "ablation.tex" in files and "report.html" in files


def test_quiet_prints_only_the_paths(tmp_path, capsys):
    published = Path(__file__).resolve().parents[2] / "analysis" / "published" / "gacl_table1.csv"
    assert main(["report", str(published), "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed and all(Path(line).is_file() for line in printed)
    assert {Path(line).name for line in printed} >= {"comparison.tex", "stats.txt"}


def test_latex_prints_paper_names_and_a_baseline_group(reported):
    ablation = (Path(str(reported["out"])) / "ablation.tex").read_text()
    assert r"\multicolumn{3}{c}{Digits (16 px)}" in ablation
    assert ablation.count(r"\midrule") == 2  # under the header, and above the baselines
    body = ablation[ablation.index(r"\midrule") :]
    group = body[body.index(r"\midrule", 1) :]
    assert group.count(r"\checkmark") == 0 and "k-means (pixels)" in group
    assert "w/o cluster head" in body and r"\checkmark" in body
    comparison = (Path(str(reported["out"])) / "comparison.tex").read_text()
    assert comparison.count(r"\blacktriangledown") == 3 * 3 * 2 + 1  # the cells and the note


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_the_report_compiles_with_its_figures(reported):
    out = Path(str(reported["out"]))
    document = (
        "\\documentclass{article}\n\\usepackage[margin=1.5cm]{geometry}\n"
        "\\usepackage{booktabs,amssymb,graphicx}\n\\begin{document}\n\\scriptsize\n"
        "\\input{ablation.tex}\n\\input{figures.tex}\n\\end{document}\n"
    )
    (out / "paper.tex").write_text(document)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=out, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


def test_every_figure_has_a_caption_with_n_and_its_test(reported):
    out = Path(str(reported["out"]))
    for stem in ("acc_per_epoch", "paired_differences", "cd_diagram"):
        assert (out / f"{stem}.pdf").stat().st_size > 1000
        assert (out / f"{stem}.png").stat().st_size > 1000
    captions = (out / "figures.tex").read_text().split(r"\begin{figure}")[1:]
    assert len(captions) == 3
    curves, paired, cd = captions
    assert "n = 8 seeds" in curves and "no test" in curves
    assert "n = 8 pairs" in paired and "Wilcoxon signed-rank test" in paired
    assert "N = 2 data sets" in cd and "Nemenyi" in cd


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)")
def test_the_html_page_renders_in_headless_chromium(reported):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    page_path = Path(str(reported["out"])) / "report.html"
    html = page_path.read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    problems: list[str] = []
    shot = Path(str(reported["folder"])) / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda request: problems.append(request.url))
        page.goto(page_path.as_uri(), wait_until="load")
        table = page.locator("table.results").first
        assert table.is_visible() and "Digits (16 px)" in table.inner_text()
        assert "w/o cluster head" in table.inner_text()
        widths = page.eval_on_selector_all(
            "figure img", "images => images.map(i => i.naturalWidth)"
        )
        assert len(widths) == 3 and min(widths) > 100  # every figure decoded and drawn
        assert page.locator("figcaption").count() == 3
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    pixels = Image.open(shot).convert("L")
    histogram = pixels.histogram()
    dark = sum(histogram[:128]) / (pixels.width * pixels.height)
    assert pixels.height > 900 and 0.005 < dark < 0.5  # text and figures, on a white page


def test_a_study_whose_other_rows_are_still_running_reports_what_finished(tmp_path, capsys):
    """Mid-study only the control has finished: its table prints, no paired test is tried."""

    with store_folder() as folder:
        _report_midway(f"sqlite:///{folder}/mlflow.db", tmp_path, capsys)


def _report_midway(uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    rows = {"full": ("cc", ON), "no_cluster": ("cc", OFF)}
    log_runs(uri, "midway", rows, DATASETS[:1], [0, 1], _score)
    client = MlflowClient(uri)
    for run in client.search_runs([client.get_experiment_by_name("midway").experiment_id]):
        if run.data.tags["ablate.variant"] == "no_cluster":
            client.update_run(run.info.run_id, status="RUNNING")
    out = tmp_path / "out"
    assert main(["report", "midway", "--tracking-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    full = next(line for line in printed.splitlines() if line.startswith("full"))
    assert "0.862 ± 0.003" in full and "≈" not in printed
    assert "note: 2 run(s) did not finish" in printed and not (out / "paired.txt").exists()


def test_run_ids_link_to_an_mlflow_ui_only_when_one_is_known():
    import pandas as pd

    from analysis.report import ReportInput, build_report
    from analysis.report_html import render_html

    runs = pd.DataFrame(
        [
            ("cc", variant, "cifar10", seed, 0.5 + 0.1 * (variant == "full"), "FINISHED",
             "7", f"run{variant}{seed}", f"{variant}-s{seed}")
            for variant in ("full", "no_cluster")
            for seed in range(3)
        ],
        columns=["method", "variant", "dataset", "seed", "acc", "status", "experiment_id",
                 "run_id", "run_name"],
    )  # fmt: skip
    linked = render_html(
        build_report(ReportInput("s", runs, {}, mlflow_ui="http://h:5000/"), ["acc"]), []
    )
    assert 'href="http://h:5000/#/experiments/7/runs/runfull0"' in linked
    assert "CIFAR-10" in linked and "<script" not in linked
    plain = render_html(build_report(ReportInput("s", runs, {}), ["acc"]), [])
    assert "href=" not in plain and "runfull0" in plain
