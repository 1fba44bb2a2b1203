"""A trial on two workers computes what one worker computes on the same global batch.

Two real gloo ranks (spawned processes) against one process without a process group, for
every registered method that trains: the same views, every loss term, every parameter
gradient and every batch-norm statistic after the step, within 1e-5 of the tensor's scale.

The networks run in float64 (the views are cast; losses keep their own float32 casts), where
the two agree to about 1e-13. In float32 the comparison would measure rounding, not the
method: on this tiny configuration one worker's own float32 gradients are up to 1.4e-2 from
float64 on some convolutions (at 16 px, 18 % on a ResNet-18 layer with 2×2 maps), and two
workers, whose convolutions see half the rows and whose batch-norm sums are reduced over
ranks, round differently by as much.
"""

import pytest
import torch

from tests.trainables.gloo import join, on_two_ranks
from tests.trainables.test_contract import TRAINED, _tiny
from trainables.datasets import load_dataset
from trainables.loop import LoopSettings, Trainer
from trainables.registry import registered_methods

GLOBAL_BATCH = 16
IMAGE_SIZE = 16
TOLERANCE = 1e-5  # relative to the largest magnitude of each tensor


def _data(n: int = 48):
    return load_dataset("synthetic", options={"n": n, "classes": 4, "size": 16})


def _trainer(name: str, sync_bn: bool = True, n: int = 48, **overrides) -> Trainer:
    method_class = registered_methods()[name]
    config = method_class.config_class(
        **{**_tiny(method_class), "batch_size": GLOBAL_BATCH, "image_size": IMAGE_SIZE, **overrides}
    )
    settings = LoopSettings(seed=3, steps_per_epoch=1, sync_bn=sync_bn)
    trainer = Trainer(method_class, config, _data(n), settings)
    trainer.method.network.double()  # the optimiser keeps the same parameter objects
    make_views = trainer.method.make_views
    trainer.method.make_views = lambda *args: tuple(v.double() for v in make_views(*args))
    for augmenter in trainer.method.augmenters.values():  # NNCC mines on evaluation views
        evaluation = augmenter.evaluation
        augmenter.evaluation = lambda images, evaluation=evaluation: evaluation(images).double()
    return trainer


def one_step(name: str, sync_bn: bool = True, n: int = 48) -> dict:
    """Loss terms of one step, then every gradient and every state tensor after it."""
    trainer = _trainer(name, sync_bn, n)
    metrics = trainer.train_epoch()
    net = trainer.method.network
    return {
        "terms": {k: v for k, v in metrics.items() if k.startswith("loss")},
        "steps": metrics["steps"],
        "grads": {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None},
        "state": {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()},
    }


def _rank(rank: int, port: int, jobs: list[tuple[str, bool, int]], results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    join(rank, port)
    try:
        found = {}
        for job in jobs:
            try:
                found[job] = _as_numpy(one_step(*job))
            except Exception as error:  # noqa: BLE001 - the test fails with the reason
                found[job] = f"{type(error).__name__}: {error}"
        if rank == 0:  # numpy: plain pickles, not file descriptors of a process that exits
            results.put(found)
    finally:
        dist.destroy_process_group()


def _as_numpy(out):
    if isinstance(out, dict):
        return {k: _as_numpy(v) for k, v in out.items()}
    return out.numpy() if isinstance(out, torch.Tensor) else out


SMALL_POOL = 15  # fewer images than the batch, and not a multiple of the workers
JOBS = [(name, True, 48) for name in TRAINED] + [("cc", False, 48), ("cc", True, SMALL_POOL)]


@pytest.fixture(scope="module")
def two_workers():
    """Every job on two real gloo ranks, in one spawn (start-up dominates a tiny step)."""
    return on_two_ranks(_rank, JOBS)


def _assert_close(name: str, expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys(), name
    for key, want in expected.items():
        want_t, got_t = torch.as_tensor(want).float(), torch.as_tensor(got[key]).float()
        scale = max(float(want_t.abs().max()), 1e-12)
        error = float((want_t - got_t).abs().max())
        assert error <= TOLERANCE * scale, f"{name} {key}: off by {error:.3g} at scale {scale:.3g}"


@pytest.mark.parametrize("name", TRAINED)
def test_two_workers_compute_the_one_worker_step(name, two_workers):
    got = two_workers[(name, True, 48)]
    assert not isinstance(got, str), got
    alone = one_step(name)
    assert got["steps"] == alone["steps"] == 1.0  # one global batch, not one per rank
    _assert_close(f"{name} loss", alone["terms"], got["terms"])
    _assert_close(f"{name} gradient", alone["grads"], got["grads"])
    _assert_close(f"{name} state", alone["state"], got["state"])  # incl. batch-norm stats


def test_per_rank_batch_norm_is_not_the_one_worker_step(two_workers):
    """``sync_bn: false`` normalises each rank's rows alone: the step changes, as it says."""
    got = two_workers[("cc", False, 48)]
    assert not isinstance(got, str), got
    with pytest.raises(AssertionError, match="off by"):
        _assert_close("cc gradient", one_step("cc")["grads"], got["grads"])


def test_a_pool_smaller_than_the_batch_keeps_every_image_on_two_workers(two_workers):
    """15 images, batch 16, two workers: one step over all 15 rows (8 and 7), as one worker."""
    got = two_workers[("cc", True, SMALL_POOL)]
    assert not isinstance(got, str), got
    alone = one_step("cc", n=SMALL_POOL)
    assert got["steps"] == alone["steps"] == 1.0
    _assert_close("cc loss", alone["terms"], got["terms"])
    _assert_close("cc gradient", alone["grads"], got["grads"])
    _assert_close("cc state", alone["state"], got["state"])


def test_a_batch_the_workers_cannot_split_is_refused():
    from trainables.data_parallel import row_counts
    from trainables.method import unsplittable_batch

    assert row_counts(10, 4) == [3, 3, 2, 2]
    nncc = registered_methods()["nncc"]
    stages = nncc.stages(nncc.config_class(**{**_tiny(nncc), "pretext": {"batch_size": 15}}))
    assert unsplittable_batch(stages, 2) == (
        "batch_size 15 of stage 'pretext' is not divisible by 2 workers: each worker encodes "
        "an equal share of the batch"
    )
    assert unsplittable_batch(stages, 1) is None


def _gcc_trainer() -> Trainer:
    """GCC carries a bank and a graph between steps: what a resume must restore exactly."""
    method_class = registered_methods()["gcc"]
    config = method_class.config_class(**{**_tiny(method_class), "batch_size": GLOBAL_BATCH})
    return Trainer(method_class, config, _data(), LoopSettings(seed=5, steps_per_epoch=2))


def _losses_and_state(metrics: list[dict], trainer: Trainer) -> dict:
    state = trainer.method.network.state_dict()
    return {
        "losses": [m["loss"] for m in metrics],
        "state": {k: v.numpy().copy() for k, v in state.items() if v.is_floating_point()},
    }


def _resume_rank(rank: int, port: int, folder: str, part: str, results) -> None:
    """``whole``: three epochs, and one more trial saved after its first; ``resumed``: the
    saved trial restored in fresh processes, as after a kill, and trained to the end."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    join(rank, port)
    try:
        trainer = _gcc_trainer()
        if part == "whole":
            metrics = [trainer.train_epoch() for _ in range(3)]
            out = _losses_and_state(metrics[1:], trainer)
            interrupted = _gcc_trainer()
            interrupted.train_epoch()
            if interrupted.is_chief:
                interrupted.save(f"{folder}/state.pt")
            dist.barrier()
        else:
            trainer.restore(f"{folder}/state.pt")
            out = _losses_and_state([trainer.train_epoch() for _ in range(2)], trainer)
        if rank == 0:
            results.put(out)
    finally:
        dist.destroy_process_group()


def test_a_two_worker_trial_resumed_in_new_processes_continues_exactly(tmp_path):
    whole = on_two_ranks(_resume_rank, str(tmp_path), "whole")
    resumed = on_two_ranks(_resume_rank, str(tmp_path), "resumed")
    assert resumed["losses"] == whole["losses"]
    for key, value in whole["state"].items():
        assert (resumed["state"][key] == value).all(), key


def test_global_batch_norm_in_one_process_is_batch_norm():
    """Its forward, fused backward and running statistics against torch's, in float64."""
    from trainables.data_parallel import GlobalBatchNorm

    torch.manual_seed(0)
    x = (3 + 2 * torch.randn(6, 4, 5, 5, dtype=torch.float64)).requires_grad_()
    upstream = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    plain = torch.nn.BatchNorm2d(4, momentum=0.3).double()
    ours = GlobalBatchNorm(4, momentum=0.3).double()
    with torch.no_grad():
        plain.weight.uniform_(0.5, 2)
        plain.bias.uniform_(-1, 1)
    ours.load_state_dict(plain.state_dict())
    results = []
    for layer in (plain, ours):
        x.grad = None
        out = layer(x)
        (out * upstream).sum().backward()
        results.append((out, x.grad.clone(), layer.weight.grad, layer.bias.grad))
    for want, got in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-10, atol=1e-12)
