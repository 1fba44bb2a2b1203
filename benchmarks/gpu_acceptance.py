"""The GPU acceptance command: one script, one GPU, about 8 minutes, one JSON and one summary.

First run on an H200 on 2026-12-04: docs/benchmarks.md has its figures and what it found.

    .venv/bin/python benchmarks/gpu_acceptance.py                 # on a machine with a GPU
    .venv/bin/python benchmarks/gpu_acceptance.py --smoke         # end to end on CPU, minutes

It runs, in order, each part under its own time budget and recording what it measured:

1. the CUDA tests (``tests/trainables/test_cuda.py``: every method's step on CUDA against
   the CPU, bf16 included, faiss on the GPU, the float32 look-up under autocast);
2. training throughput of every method at its paper's resolution and backbone (images/s of
   the shared loop with on-device augmentation), and CC fed by the PIL ``DataLoader`` path
   on the same device, as the baseline;
3. the k-NN graph of 60,000 × 512 features with faiss on the device;
4. the proxy suite's CC and GACL studies on all 70,000 Fashion-MNIST images with ResNet-18,
   for as many epochs as fit the budget, through ``ablate run`` (real Ray and MLflow), each
   beside k-means on the pixels: the evidence that they learn, at GPU scale.

``--smoke`` shrinks every part (synthetic images, a digits subset, cnn4, a few steps) so that
the whole command, and the test that runs it, finish on a CPU in a few minutes. Figures from
``--smoke`` are not benchmarks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@dataclass(frozen=True)
class Plan:
    """What each part runs: the full acceptance sizes, or the CPU smoke sizes."""

    device: str
    throughput_steps: int
    paper_resolution: bool
    knn: tuple[int, int]  # N × d
    proxy_dataset: dict[str, Any]
    proxy_base: dict[str, Any]
    proxy_budget_s: float  # training time per proxy study (epochs are sized to fit)
    max_epochs: int


def plan_for(smoke: bool) -> Plan:
    if smoke:
        return Plan(
            device="cpu",
            throughput_steps=2,
            paper_resolution=False,
            knn=(5000, 64),
            proxy_dataset={"name": "digits", "size": 16, "subset": 600},
            proxy_base={"backbone": "cnn4", "image_size": 16, "batch_size": 64},
            proxy_budget_s=20.0,
            max_epochs=2,
        )
    return Plan(
        device="cuda",
        throughput_steps=20,
        paper_resolution=True,
        knn=(60000, 512),
        proxy_dataset={"name": "fashion_mnist"},
        proxy_base={"backbone": "resnet18", "image_size": 28, "batch_size": 256},
        proxy_budget_s=60.0,
        max_epochs=100,
    )


def timed(results: dict[str, Any], name: str, part: Callable[[], dict[str, Any]]) -> None:
    """Run one part; record its figures, its wall time and any failure (the others go on)."""
    start = time.perf_counter()
    try:
        results[name] = {"ok": True, **part()}
    except Exception as error:  # noqa: BLE001 - a part that fails is a finding, not a stop
        results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    results[name]["seconds"] = round(time.perf_counter() - start, 1)
    print(f"[{name}] {results[name]}", flush=True)


# --------------------------------------------------------------------------------------------
# 1. CUDA tests


def cuda_tests(out: Path) -> dict[str, Any]:
    """The CUDA tests; their whole output goes to ``cuda_tests.txt``, the failures' lines here."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/trainables/test_cuda.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (out / "cuda_tests.txt").write_text(done.stdout + done.stderr)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    if done.returncode != 0:
        # pytest -ra's short summary: one "FAILED path::test - reason" line per failure
        failed = [
            line[:300] for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))
        ]
        raise RuntimeError(f"pytest exited {done.returncode}: {summary}; " + " | ".join(failed))
    return {"summary": summary}


# --------------------------------------------------------------------------------------------
# 2. Throughput


def throughput(plan: Plan) -> dict[str, Any]:
    """Images/s of every method's loop at its paper's resolution, and CC's PIL baseline."""
    from trainables.datasets import load_dataset
    from trainables.loop import LoopSettings, Trainer
    from trainables.registry import registered_methods

    device = torch.device(plan.device)
    per_method: dict[str, Any] = {}
    for name, method in registered_methods().items():
        if not method.trains:
            continue
        defaults = method.config_class()
        size = (defaults.image_size or 32) if plan.paper_resolution else 16
        batch = min(defaults.batch_size, 256) if plan.paper_resolution else 16
        overrides: dict[str, Any] = {"image_size": size, "batch_size": batch, "epochs": 1}
        if not plan.paper_resolution:
            overrides["backbone"] = "cnn4"
        if name == "gcc":
            overrides.update(warmup_epochs=0, graph_every=1)
        if name == "nncc":
            overrides["pretext"] = {"epochs": 0}
        if name == "gacl":
            overrides["knn_k"] = min(defaults.knn_k, batch - 1)
        config = method.config_class(**overrides)
        images = batch * (plan.throughput_steps + 1)
        data = load_dataset("synthetic", options={"n": images, "size": min(size, 96)})
        settings = LoopSettings(device=plan.device, steps_per_epoch=1, eval_every=1000)
        trainer = Trainer(method, config, data, settings)
        trainer.train_epoch()  # warm-up: kernels, allocator, graphs
        trainer = Trainer(
            method,
            config,
            data,
            LoopSettings(device=plan.device, steps_per_epoch=plan.throughput_steps),
        )
        metrics = trainer.train_epoch()
        per_method[name] = {
            "image_size": size,
            "batch": batch,
            "backbone": config.backbone,
            "images_per_s": round(metrics["images_per_s"], 1),
        }
    import toolkit_throughput

    baseline_batch = 256 if plan.paper_resolution else 16
    data = load_dataset(
        "synthetic", options={"n": baseline_batch * (plan.throughput_steps + 2), "size": 32}
    )
    size = 224 if plan.paper_resolution else 16
    ours, pil = toolkit_throughput.training_rates(
        data.train.images, data.labels, size, baseline_batch, plan.throughput_steps, device, 8
    )
    return {
        "device": str(device),
        "methods": per_method,
        "cc_pil_dataloader": {
            "image_size": size,
            "batch": baseline_batch,
            "ours_images_per_s": round(ours, 1),
            "pil_images_per_s": round(pil, 1),
            "ratio": round(ours / pil, 2) if pil else None,
        },
    }


# --------------------------------------------------------------------------------------------
# 3. k-NN graph


def knn_graph(plan: Plan) -> dict[str, Any]:
    from trainables.neighbours import faiss_gpu_available, knn

    n, d = plan.knn
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).to(plan.device)
    knn(x[:1000], 5)  # warm-up
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    _, lists = knn(x, 5)
    if x.is_cuda:
        torch.cuda.synchronize()
    return {"n": n, "dim": d, "k": 5, "seconds_knn": round(time.perf_counter() - start, 3),
            "on": str(lists.device), "faiss_gpu": faiss_gpu_available()}  # fmt: skip


# --------------------------------------------------------------------------------------------
# 4. Proxy studies at GPU scale


def _study_text(name: str, method: str, plan: Plan, epochs: int, root: Path) -> str:
    variants = {
        "cc": {"full": {}, "no_cluster": {"loss.cluster": False, "loss.entropy": False}},
        "gacl": {"full": {}, "no_aug": {"loss.aug": False}, "no_graph": {"loss.graph": False}},
    }[method]
    base = {**plan.proxy_base, "epochs": epochs}
    if method == "cc":
        base["optim.lr"] = 0.001
    if method == "gacl":
        base["knn_k"] = 5
    study = {
        "name": name,
        "method": method,
        "datasets": [plan.proxy_dataset],
        "seeds": [0],
        "base": base,
        "variants": variants,
        "baselines": ["pixels"],
        "resources": {"cpus": 4, "gpus": 0.3, "max_concurrent": 3}
        if plan.device == "cuda"
        else {"cpus": 1, "max_concurrent": 2},
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db"},
        "run": {"storage": str(root / "results"), "eval_every": max(1, epochs // 4)},
    }
    return json.dumps(study)  # JSON is YAML


def _epoch_seconds(method: str, plan: Plan) -> float:
    """One epoch's training time of the study's first variant, from a few measured steps."""
    from trainables.datasets import load_dataset
    from trainables.loop import LoopSettings, Trainer
    from trainables.registry import get_method

    entry = dict(plan.proxy_dataset)
    name = entry.pop("name")
    data = load_dataset(name, options=entry)
    overrides = {**plan.proxy_base, "epochs": 1}
    if method == "gacl":
        overrides["knn_k"] = 5
    config = get_method(method).config_class(**overrides)
    steps = 3
    settings = LoopSettings(device=plan.device, steps_per_epoch=steps, eval_every=1000)
    trainer = Trainer(get_method(method), config, data, settings)
    trainer.train_epoch()  # warm-up
    metrics = trainer.train_epoch()
    per_step = metrics["epoch_time_s"] / max(metrics["steps"], 1)
    return per_step * (data.train.num_samples // config.batch_size)


def proxy_study(method: str, plan: Plan, out: Path) -> dict[str, Any]:
    epoch_s = _epoch_seconds(method, plan)
    # the rows train at once but share one device: on the H200 (2026-12-04) CC's two rows of
    # 11 epochs at 7.6 s each took 239 s, not the 84 s of one row alone, so no speed-up is
    # assumed from running them side by side
    epochs = int(max(1, min(plan.max_epochs, plan.proxy_budget_s / epoch_s)))
    root = Path(tempfile.mkdtemp(prefix=f"acceptance-{method}-", dir=out))
    study = root / "study.yaml"
    study.write_text(_study_text(f"acceptance_{method}", method, plan, epochs, root))
    done = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "run", str(study)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    table = [line for line in done.stdout.splitlines() if line[:1].isalpha()]
    return {
        "epochs": epochs,
        "seconds_per_epoch_estimate": round(epoch_s, 2),
        "returncode": done.returncode,
        "table": table[-8:],
        "stderr_tail": done.stderr[-400:] if done.returncode else "",
    }


# --------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    """The summary a closing note can paste."""
    lines = [f"# GPU acceptance ({'smoke, CPU' if results['smoke'] else results['device']})", ""]
    lines.append(f"- machine: {results['machine']}; torch {results['torch']}")
    for name in ("cuda_tests", "throughput", "knn_graph", "proxy_cc", "proxy_gacl"):
        part = results.get(name, {})
        if not part:
            status = "not reached (the run was stopped before it)"
        else:
            status = "ok" if part["ok"] else f"FAILED ({part['error']})"
        lines.append(f"- **{name}** ({part.get('seconds', '?')} s): {status}")
    if results.get("cuda_tests", {}).get("ok"):
        lines.append(f"  - {results['cuda_tests']['summary']}")
    if results.get("throughput", {}).get("ok"):
        lines.append("")
        lines.append("| method | px | batch | backbone | images/s |")
        lines.append("|---|---|---|---|---|")
        for name, row in results["throughput"]["methods"].items():
            lines.append(
                f"| {name} | {row['image_size']} | {row['batch']} | {row['backbone']} | "
                f"{row['images_per_s']} |"
            )
        pil = results["throughput"]["cc_pil_dataloader"]
        lines.append(
            f"\nCC at {pil['image_size']} px, batch {pil['batch']}: on-device augmentation "
            f"{pil['ours_images_per_s']} images/s, PIL DataLoader {pil['pil_images_per_s']} "
            f"images/s ({pil['ratio']}x)"
        )
    if results.get("knn_graph", {}).get("ok"):
        k = results["knn_graph"]
        lines.append(
            f"\nk-NN graph {k['n']} × {k['dim']} (k = 5): {k['seconds_knn']} s, "
            f"{'faiss on the GPU' if k['faiss_gpu'] else 'faiss CPU index (no GPU faiss here)'}"
        )
    for name in ("proxy_cc", "proxy_gacl"):
        part = results.get(name, {})
        if part.get("ok"):
            lines.append(f"\n{name}: {part['epochs']} epochs\n")
            lines += [f"    {line}" for line in part["table"]]
    lines.append(f"\ntotal: {results['seconds']} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (a test)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"), help="output folder")
    parser.add_argument(
        "--proxy-budget",
        type=float,
        default=None,
        help="seconds of training per proxy study (epochs are sized to fit; default 60 on a GPU)",
    )
    args = parser.parse_args(argv)
    plan = plan_for(args.smoke)
    if args.proxy_budget is not None:
        plan = dataclasses.replace(plan, proxy_budget_s=args.proxy_budget)
    if plan.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "smoke": args.smoke,
        "device": torch.cuda.get_device_name(0) if plan.device == "cuda" else "cpu",
        "machine": platform.platform(),
        "torch": torch.__version__,
    }
    parts: dict[str, Callable[[], dict[str, Any]]] = {
        "cuda_tests": lambda: cuda_tests(out),
        "throughput": lambda: throughput(plan),
        "knn_graph": lambda: knn_graph(plan),
        "proxy_cc": lambda: proxy_study("cc", plan, out),
        "proxy_gacl": lambda: proxy_study("gacl", plan, out),
    }
    for name, part in parts.items():
        timed(results, name, part)
        # written after every part, so a run cut short by a time limit keeps what it measured
        results["seconds"] = round(time.perf_counter() - start, 1)
        (out / "gpu_acceptance.json").write_text(json.dumps(results, indent=2))
        (out / "gpu_acceptance.md").write_text(markdown(results))
    print(markdown(results))
    return 0 if all(results[p]["ok"] for p in parts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
