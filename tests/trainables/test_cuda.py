"""CUDA paths: run only where a GPU is present (skipped on CPU-only machines and in CI)."""

import pytest
import torch

from tests.trainables.conftest import TINY
from trainables import augment, neighbours
from trainables.cc import CC, CCConfig
from trainables.config import AugmentConfig
from trainables.datasets import CATALOGUE
from trainables.loop import LoopSettings, Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_faiss_gpu_knn_matches_cpu():
    x = torch.randn(5000, 64, generator=torch.Generator().manual_seed(0))
    _, cpu_idx = neighbours.knn(x, 10)
    _, gpu_idx = neighbours.knn(x.cuda(), 10)
    assert gpu_idx.is_cuda
    assert (gpu_idx.cpu() == cpu_idx).float().mean() > 0.999  # ties may order differently


def test_augmentations_agree_across_devices_in_distribution():
    info = CATALOGUE["cifar10"].info
    aug = augment.ViewAugmenter(AugmentConfig(blur=True), info, 32)
    imgs = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    view = aug.random_view(imgs.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert view.is_cuda and view.shape == (256, 3, 32, 32)
    assert 0 <= float(view.min()) and float(view.max()) <= 1


def test_cc_trains_with_bf16_and_channels_last(synthetic):
    trainer = Trainer(
        CC, CCConfig(**TINY), synthetic, LoopSettings(device="cuda", steps_per_epoch=2)
    )
    assert trainer.use_amp and trainer.channels_last
    report = trainer.fit()
    assert report.metrics["loss"] == report.metrics["loss"]  # finite, not NaN
    assert 0 <= report.metrics["acc"] <= 1
