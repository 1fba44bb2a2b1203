"""Data-parallel scaling of one method: images/s with 1 and N workers, and where the time goes.

One process trains the method alone (all the machine's CPU threads, or one GPU); then N
processes train it as one ``workers: N`` trial (gloo on CPU, each with its share of the
threads; NCCL on GPUs, one each). Both at the same global batch, so the trial computes the
same thing (``trainables/data_parallel.py``). Printed: images/s of each, the speed-up, and the
share of the N-worker step spent in collectives (the backbone's gathered features, the
synchronised batch norm's statistics, the gradient all-reduce), timed by wrapping
``torch.distributed``'s calls.

    .venv/bin/python benchmarks/data_parallel.py                        # CPU: CC, 2 gloo workers
    .venv/bin/python benchmarks/data_parallel.py --device cuda --workers 4 --batch 256 --size 224
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections import defaultdict
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from gacl_step import timed_epoch  # the same timing of an epoch (run from benchmarks/)

from trainables.datasets import load_dataset
from trainables.loop import LoopSettings, Trainer
from trainables.registry import get_method


def _trainer(args: argparse.Namespace, device: str) -> Trainer:
    method_class = get_method(args.method)
    config = method_class.config_class(
        backbone=args.backbone, image_size=args.size, batch_size=args.batch, epochs=100
    )
    data = load_dataset(
        "synthetic", options={"n": args.batch * (args.steps + 1), "size": args.size}
    )
    settings = LoopSettings(device=device, steps_per_epoch=args.steps, eval_every=10**6)
    return Trainer(method_class, config, data, settings)


class CollectiveTimer:
    """Wall time inside ``torch.distributed`` collectives, by purpose (synchronised on CUDA).

    ``gather``: the backbone's features, forward and backward; ``gradient``: the all-reduce of
    the gradients; ``batch norm``: every other all-reduce (the synchronised statistics).
    """

    def __init__(self, cuda: bool) -> None:
        import trainables.data_parallel as data_parallel
        import trainables.loop as loop

        self.cuda = cuda
        self.seconds: dict[str, float] = defaultdict(float)
        self._purpose = "batch norm"
        for name in ("all_gather_single", "all_reduce"):
            setattr(dist, name, self._timed(getattr(dist, name)))
        loop.average_gradients = self._for("gradient", loop.average_gradients)
        gather = data_parallel._GatherRows
        gather.forward = staticmethod(self._for("gather", gather.forward))
        gather.backward = staticmethod(self._for("gather", gather.backward))

    def _for(self, purpose: str, function: Any) -> Any:
        def within(*args: Any, **kwargs: Any) -> Any:
            self._purpose = purpose
            try:
                return function(*args, **kwargs)
            finally:
                self._purpose = "batch norm"

        return within

    def _timed(self, collective: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = collective(*args, **kwargs)
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[self._purpose] += time.perf_counter() - start
            return out

        return timed


def _timed_alone(args: argparse.Namespace) -> tuple[float, int]:
    trainer = _trainer(args, args.device)
    trainer.train_epoch()  # warm-up: allocator, cudnn autotune
    return timed_epoch(trainer)


def _worker(rank: int, args: argparse.Namespace, port: int, results: Any) -> None:
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    else:
        torch.set_num_threads(max(1, args.threads // args.workers))
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=args.workers,
    )
    try:
        timer = CollectiveTimer(cuda)
        trainer = _trainer(args, f"cuda:{rank}" if cuda else "cpu")
        trainer.train_epoch()  # warm-up
        timer.seconds.clear()
        seconds, steps = timed_epoch(trainer)
        if rank == 0:
            results.put((seconds, steps, dict(timer.seconds)))
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--method", default="cc")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="the global batch")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    if args.device == "cpu":
        torch.set_num_threads(max(1, args.threads // args.workers))
        share, steps = _timed_alone(args)  # one worker on one worker's share of the threads
        torch.set_num_threads(args.threads)
    alone, steps = _timed_alone(args)
    one = args.batch * steps / alone

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = [
        ctx.Process(target=_worker, args=(r, args, port, results)) for r in range(args.workers)
    ]
    for process in ranks:
        process.start()
    seconds, steps_n, spent = results.get(timeout=3600)
    for process in ranks:
        process.join(timeout=60)
    many = args.batch * steps_n / seconds

    print(
        f"{args.method}, {args.backbone} at {args.size} px, global batch {args.batch}, "
        f"{args.device} ({args.threads} threads in all on CPU)"
    )
    print(f"  1 worker:  {one:9.1f} images/s   ({alone / steps * 1000:8.1f} ms a step)")
    print(
        f"  {args.workers} workers: {many:9.1f} images/s   ({seconds / steps_n * 1000:8.1f} ms a "
        f"step)   speed-up {many / one:.2f}x"
    )
    if args.device == "cpu":
        ideal = args.workers * args.batch * steps / share
        print(
            f"  1 worker on {max(1, args.threads // args.workers)} thread(s): "
            f"{args.batch * steps / share:9.1f} images/s; {args.workers} workers reach "
            f"{many / ideal:.0%} of {args.workers}x that"
        )
    for purpose in ("gather", "batch norm", "gradient"):
        share = spent.get(purpose, 0.0) / seconds
        print(f"    collectives for {purpose:10s} {share:6.1%} of the step")
    print(f"    collectives in all         {sum(spent.values()) / seconds:6.1%} of the step")


if __name__ == "__main__":
    main()
