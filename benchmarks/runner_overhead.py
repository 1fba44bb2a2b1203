"""Per-trial overhead of `ablate run` against the same loops run back to back in plain Python.

A study of N trials of a fixed tiny loop (CC, ResNet-18 at 8 px, 16 synthetic images, one
epoch) runs once through the whole product - Ray start, Tune scheduling, one trial at a time,
checkpoints, MLflow logging - and once as plain ``Trainer.fit`` calls in this process.
Overhead per trial = (ablate - plain) / N, printed with and without Ray's start-up.
Target: at most 3 s per single-worker trial on 2 cores.

    .venv/bin/python benchmarks/runner_overhead.py --trials 8
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

STUDY = """\
name: overhead
method: cc
datasets: [{{name: synthetic, n: 16, size: 8}}]
seeds: {seeds}
base: {{backbone: resnet18, image_size: 8, epochs: 1, batch_size: 16}}
resources: {{cpus: 1, max_concurrent: 1}}
tracking: {{uri: "sqlite:///{root}/mlflow.db"}}
run: {{storage: "{root}/results"}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()

    import ray

    from ablate.planner import expand
    from ablate.progress_callback import Display
    from ablate.runner import run_study
    from ablate.study_file import load_study
    from trainables.datasets import load_dataset
    from trainables.loop import LoopSettings, Trainer
    from trainables.registry import get_method

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = root / "overhead.yaml"
        path.write_text(textwrap.dedent(STUDY).format(root=root, seeds=list(range(args.trials))))
        study = load_study(path)

        start = time.perf_counter()
        for spec in expand(study):
            entry = spec.dataset_entry
            data = load_dataset(entry.name, options=entry.options)
            Trainer(
                get_method(spec.method), spec.method_config(), data, LoopSettings(seed=spec.seed)
            ).fit()
        plain = time.perf_counter() - start

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        outcome = run_study(study, str(path), display=Display(printer=lambda line: None))
        total = time.perf_counter() - start
        ray.shutdown()
    assert not outcome.failed, outcome.failed
    n = args.trials
    print(f"{n} trials, one at a time, 1 CPU each, on a local Ray of 2 CPUs")
    print(f"  plain Python, back to back:   {plain:7.2f} s   ({plain / n:.2f} s per trial)")
    print(f"  ablate run (incl. Ray start): {total:7.2f} s   ({total / n:.2f} s per trial)")
    print(f"  Ray start-up alone:           {ray_start:7.2f} s")
    print(
        f"  overhead per trial:           {(total - plain) / n:7.2f} s   (excluding Ray start: "
        f"{(total - ray_start - plain) / n:.2f} s); ratio ablate/plain = {total / plain:.2f}x"
    )


if __name__ == "__main__":
    main()
