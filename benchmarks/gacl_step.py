"""GACL's training step against CC's on the same batch: the cost of its graph, attention and
GCN. Both use ResNet-18 at the same resolution; the ratio is GACL / CC step time.
Target: at most 1.3x CC's step on GPU at batch 256.

    .venv/bin/python benchmarks/gacl_step.py                       # CPU, batch 64
    .venv/bin/python benchmarks/gacl_step.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import time

import torch

from trainables.cc import CC, CCConfig
from trainables.datasets import load_dataset
from trainables.gacl import GACL, GACLConfig
from trainables.loop import LoopSettings, Trainer


def timed_epoch(trainer: Trainer) -> tuple[float, int]:
    """Seconds of one epoch (the device synchronised) and its steps."""
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    metrics = trainer.train_epoch()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, int(metrics["steps"])


def step_time(trainer: Trainer, steps: int) -> float:
    trainer.train_epoch()  # warm-up (allocator, cudnn autotune)
    seconds, done = timed_epoch(trainer)
    return seconds / max(done, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    data = load_dataset(
        "synthetic", options={"n": args.batch * (args.steps + 1), "size": args.size}
    )
    settings = LoopSettings(device=args.device, steps_per_epoch=args.steps, eval_every=10**6)
    common = {
        "backbone": "resnet18",
        "image_size": args.size,
        "batch_size": args.batch,
        "epochs": 100,
    }
    cc = step_time(Trainer(CC, CCConfig(**common), data, settings), args.steps)
    gacl = step_time(Trainer(GACL, GACLConfig(**common), data, settings), args.steps)
    threads = torch.get_num_threads()
    print(f"device {args.device}, batch {args.batch}, {args.size} px, {threads} threads")
    print(f"  CC step:   {cc * 1000:9.1f} ms")
    print(f"  GACL step: {gacl * 1000:9.1f} ms   GACL/CC = {gacl / cc:.2f}x")


if __name__ == "__main__":
    main()
