"""The GPU acceptance command runs end to end on a CPU with --smoke (real Ray and MLflow)."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_acceptance_command_runs_every_part_and_writes_both_summaries(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_acceptance.py", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "gpu_acceptance.json").read_text())
    parts = ("cuda_tests", "throughput", "knn_graph", "proxy_cc", "proxy_gacl")
    assert all(results[p]["ok"] for p in parts) and results["smoke"] is True
    trained = {"cc", "cces", "gacl", "gcc", "ghdcc", "nncc"}
    assert set(results["throughput"]["methods"]) == trained
    assert all(r["images_per_s"] > 0 for r in results["throughput"]["methods"].values())
    assert results["throughput"]["cc_pil_dataloader"]["pil_images_per_s"] > 0
    assert results["knn_graph"]["n"] == 5000
    for study, rows in (("proxy_cc", ("full", "no_cluster", "pixels")),
                        ("proxy_gacl", ("full", "no_aug", "no_graph", "pixels"))):  # fmt: skip
        table = "\n".join(results[study]["table"])
        assert all(f"\n{row} " in f"\n{table}" for row in rows), table
    summary = (tmp_path / "gpu_acceptance.md").read_text()
    assert "| method | px | batch | backbone | images/s |" in summary and "total:" in summary


def test_a_summary_cut_short_says_which_parts_failed_and_which_were_not_reached(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    module = importlib.import_module("gpu_acceptance")
    results = {
        "smoke": False,
        "device": "NVIDIA H200",
        "machine": "linux",
        "torch": "2.11",
        "seconds": 318.4,
        "cuda_tests": {
            "ok": False,
            "error": "RuntimeError: FAILED tests/x.py::test_y",
            "seconds": 16,
        },
        "knn_graph": {
            "ok": True,
            "n": 60000,
            "dim": 512,
            "seconds_knn": 19.2,
            "on": "cuda:0",
            "faiss_gpu": False,
            "seconds": 19.4,
        },
    }
    summary = module.markdown(results)
    assert "**cuda_tests** (16 s): FAILED (RuntimeError: FAILED tests/x.py::test_y)" in summary
    assert "**proxy_gacl** (? s): not reached" in summary
    assert "faiss CPU index (no GPU faiss here)" in summary and "total: 318.4 s" in summary
