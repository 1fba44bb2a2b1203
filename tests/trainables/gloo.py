"""Real two-process gloo groups on loopback, for tests of multi-worker trials."""

import socket
from datetime import timedelta


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def join(rank: int, port: int, timeout_s: float = 120, world_size: int = 2) -> None:
    """Join rank ``rank`` to the group rank 0 listens for on ``port`` (loopback only)."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )


def on_two_ranks(target, *args):
    """Run ``target(rank, port, *args, results)`` in two spawned processes; rank 0's answer.

    ``target`` puts its answer on ``results`` as plain picklable data (numpy, not tensors:
    a tensor travels as a file descriptor of a process that may have exited).
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    ranks = [ctx.Process(target=target, args=(r, port, *args, results)) for r in range(2)]
    for process in ranks:
        process.start()
    out = results.get(timeout=600)
    for process in ranks:
        process.join(timeout=60)
    return out
