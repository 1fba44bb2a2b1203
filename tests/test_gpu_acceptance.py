"""The GPU acceptance command runs end to end on a CPU with --smoke (real Ray and MLflow)."""

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
