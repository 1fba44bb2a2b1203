"""CCES's support-set look-up per step against the backbone step it rides on.

The look-up is the nearest of B query features among the queue's rows (65,536 × 512 by
default): one B × h matmul. Timed against CCES's full training step (ResNet forward and
backward on two views) at the same batch, so the ratio says what the support set costs.

    .venv/bin/python benchmarks/cces_support.py                   # CPU: batch 64, 32 px
    .venv/bin/python benchmarks/cces_support.py --device cuda --batch 256 --size 224
"""

from __future__ import annotations

import argparse
import time

import torch
from gacl_step import step_time  # the same timing of a loop step (run from benchmarks/)

from trainables.cces import CCES, CCESConfig
from trainables.datasets import load_dataset
from trainables.loop import LoopSettings, Trainer
from trainables.memory import FIFOQueue


def synchronised(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def lookup_time(queue: FIFOQueue, queries: torch.Tensor, metric: str, repeats: int) -> float:
    queue.nearest(queries, metric)  # warm-up
    synchronised(queries.device.type)
    start = time.perf_counter()
    for _ in range(repeats):
        queue.nearest(queries, metric)
    synchronised(queries.device.type)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--support", type=int, default=65536)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    queue = FIFOQueue(args.support, args.dim, torch.Generator().manual_seed(0), args.device)
    queries = torch.randn(args.batch, args.dim, device=args.device)
    print(f"device {args.device}, batch {args.batch}, {args.size} px, support {args.support}")
    lookups = {m: lookup_time(queue, queries, m, 10) for m in ("l2", "cosine")}
    data = load_dataset(
        "synthetic", options={"n": args.batch * (args.steps + 1), "size": args.size}
    )
    config = CCESConfig(
        backbone="resnet34", image_size=args.size, batch_size=args.batch, support_size=args.support
    )
    settings = LoopSettings(device=args.device, steps_per_epoch=args.steps, eval_every=10**6)
    step = step_time(Trainer(CCES, config, data, settings), args.steps)
    print(f"  CCES step (ResNet-34, two views): {step * 1000:9.1f} ms")
    for metric, seconds in lookups.items():
        share = seconds / step
        print(f"  look-up ({metric:>6}):             {seconds * 1000:9.1f} ms  {share:6.1%} of it")


if __name__ == "__main__":
    main()
