"""CUDA paths against the CPU: run only where a GPU is present (skipped on CPU-only machines).

Each test computes the same thing on both devices from the same inputs and compares within
a tolerance: float32 (TF32 off) to 1e-3, bf16 autocast to a few per cent.
"""

import contextlib

import pytest
import torch

from tests.trainables.conftest import TINY
from tests.trainables.test_contract import FULL_FROM_THE_START
from trainables import augment, gacl, neighbours
from trainables.cc import CC, CCConfig
from trainables.config import AugmentConfig
from trainables.datasets import CATALOGUE
from trainables.loop import LoopSettings, Trainer
from trainables.memory import FIFOQueue
from trainables.method import Views
from trainables.registry import registered_methods

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

METHODS = sorted(name for name, method in registered_methods().items() if method.trains)


@contextlib.contextmanager
def _exact_float32():
    """No TF32 in matmuls or convolutions, so float32 on CUDA is float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_faiss_gpu_knn_matches_cpu():
    if not neighbours.faiss_gpu_available():
        pytest.skip("this faiss build has no GPU index (faiss-cpu, or faiss-gpu without its CUDA)")
    x = torch.randn(5000, 64, generator=torch.Generator().manual_seed(0))
    _, cpu_idx = neighbours.knn(x, 10)
    _, gpu_idx = neighbours.knn(x.cuda(), 10)
    assert gpu_idx.is_cuda
    assert (gpu_idx.cpu() == cpu_idx).float().mean() > 0.999  # ties may order differently


def test_augmentations_apply_alike_on_both_devices():
    """The same drawn parameters give the same views (random streams differ by device).

    The blur is a convolution, which cuDNN runs in TF32 by default (about 1e-3 off float32),
    so both devices compute in exact float32 here, as the step tests do.
    """
    info = CATALOGUE["cifar10"].info
    aug = augment.ViewAugmenter(AugmentConfig(blur=True, normalize=True), info, 32)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    params = aug.sample(images, torch.Generator().manual_seed(0))
    on_gpu = augment.ViewParams(*(getattr(params, f).cuda() for f in params.__dataclass_fields__))
    with _exact_float32():
        cpu = aug.apply(images, params)
        gpu = aug.apply(images.cuda(), on_gpu)
        evaluated = aug.evaluation(images.cuda()).cpu()
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    assert torch.allclose(evaluated, aug.evaluation(images), atol=1e-4)


def _step_on(method_class, config, data, views, index, device, bf16):
    torch.manual_seed(0)
    method = method_class(config, data.train.to(device)).to(device)
    moved = tuple(v.to(device) for v in views)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        out = method.training_step(Views(views=moved, index=index.to(device)))
    return {name: float(value.detach()) for name, value in out.terms.items()}


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("name", METHODS)
def test_one_step_matches_the_cpu(name, bf16, synthetic, monkeypatch):
    """Same initial network, same views: every loss term agrees with the CPU's float32."""
    # GACL samples neighbours by attention; a device's random stream is its own, so both
    # runs take each row's most attended neighbour instead
    monkeypatch.setattr(gacl, "sample_neighbours", lambda att: att.detach().float().argmax(1))
    method_class = registered_methods()[name]
    config = method_class.config_class(**{**TINY, **FULL_FROM_THE_START.get(name, {})})
    index = torch.arange(16)
    torch.manual_seed(0)
    maker = method_class(config, synthetic.train)
    views = maker.make_views(
        synthetic.train.images[index], index, "main", torch.Generator().manual_seed(0)
    )
    with _exact_float32():
        cpu = _step_on(method_class, config, synthetic, views, index, torch.device("cpu"), False)
        gpu = _step_on(method_class, config, synthetic, views, index, torch.device("cuda"), bf16)
    assert set(gpu) == set(cpu)
    tolerance = 5e-2 if bf16 else 1e-3
    for term, value in cpu.items():
        assert abs(gpu[term] - value) <= tolerance * max(1.0, abs(value)), (term, gpu, cpu)


def test_support_set_look_up_is_float32_under_cuda_autocast():
    gen = torch.Generator().manual_seed(7)
    centres = 3 * torch.randn(64, 512, generator=gen)
    queue = FIFOQueue(65536, 512, generator=gen)
    queue.push(centres.repeat(1024, 1) + 0.1 * torch.randn(65536, 512, generator=gen))
    queries = (centres.repeat(4, 1) + 0.1 * torch.randn(256, 512, generator=gen)).cuda()
    queue.to(torch.device("cuda"))
    with _exact_float32():
        expected = queue.nearest(queries, "l2")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got = queue.nearest(queries, "l2")
    assert torch.equal(got, expected)


def test_cc_trains_with_bf16_and_channels_last(synthetic):
    trainer = Trainer(
        CC, CCConfig(**TINY), synthetic, LoopSettings(device="cuda", steps_per_epoch=2)
    )
    assert trainer.use_amp and trainer.channels_last
    report = trainer.fit()
    assert torch.isfinite(torch.tensor(report.metrics["loss"]))
    assert 0 <= report.metrics["acc"] <= 1
    features, probs = trainer.embed_dataset()
    assert features.shape == (32, 512) and probs is not None and torch.isfinite(features).all()
