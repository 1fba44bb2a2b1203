"""Toolkit throughput, measured in one run against plain baselines (figures, not tests).

1. Augmentation only: our batched on-device SimCLR views against torchvision's per-image
   PIL pipeline (and kornia's batched pipeline, when kornia is installed).
2. CC training throughput (images/s): the shared loop with on-device augmentation against
   the same CC step fed by a torchvision/PIL ``DataLoader`` (CC's original data path).
3. k-NN graph build time: faiss ``IndexFlatIP`` against scikit-learn's ``NearestNeighbors``
   (brute force, cosine) for growing N.

    .venv/bin/python benchmarks/toolkit_throughput.py            # CPU-sized defaults
    .venv/bin/python benchmarks/toolkit_throughput.py --device cuda --image-size 32 \
        --batch 256 --steps 20 --knn-sizes 10000 60000 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainables import augment
from trainables.cc import CC, CCConfig
from trainables.config import AugmentConfig
from trainables.datasets import load_dataset
from trainables.loop import LoopSettings, Trainer
from trainables.method import Views


def row(label: str, rate: float, unit: str = "images/s", ratio: str = "") -> None:
    print(f"    {label:<36}{rate:10.1f} {unit}   {ratio}".rstrip())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def simclr_pil_transform(size: int, s: float = 0.5) -> transforms.Compose:
    """CC's per-image pipeline (CC's transform.py at 32 px: no blur)."""
    return transforms.Compose([
        transforms.RandomResizedCrop(size),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
    ])  # fmt: skip


class TwoViewPIL(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, images: np.ndarray, size: int) -> None:
        self.images = [Image.fromarray(img.transpose(1, 2, 0)) for img in images]
        self.transform = simclr_pil_transform(size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.transform(self.images[i])


def bench_augment(images: torch.Tensor, size: int, device: torch.device, repeats: int) -> None:
    print(f"\n[1] augmentation only: {images.shape[0]} images -> one view at {size} px on {device}")
    info = load_dataset("synthetic", options={"n": 4}).train.info
    ours = augment.ViewAugmenter(AugmentConfig(), info, size)
    x = images.to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    ours.random_view(x, gen)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        ours.random_view(x, gen)
    _sync(device)
    t_ours = (time.perf_counter() - start) / repeats
    pil = TwoViewPIL(images.numpy(), size)
    start = time.perf_counter()
    for i in range(len(pil)):
        pil.transform(pil.images[i])
    t_pil = time.perf_counter() - start
    row(f"ours (batched, {device})", x.shape[0] / t_ours)
    row(
        "torchvision PIL (1 process)", x.shape[0] / t_pil, ratio=f"ours/PIL = {t_pil / t_ours:.1f}x"
    )
    try:
        import kornia.augmentation as K
    except ImportError:
        print("    kornia: not installed (pip install kornia to compare)")
        return
    pipeline = torch.nn.Sequential(
        K.RandomResizedCrop((size, size)), K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2),
    ).to(device)  # fmt: skip
    xf = x.float() / 255
    pipeline(xf)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        pipeline(xf)
    _sync(device)
    t_k = (time.perf_counter() - start) / repeats
    row(f"kornia (batched, {device})", x.shape[0] / t_k, ratio=f"ours/kornia = {t_k / t_ours:.1f}x")


def training_rates(images: torch.Tensor, labels: torch.Tensor, size: int, batch: int, steps: int,
                   device: torch.device, workers: int) -> tuple[float, float]:  # fmt: skip
    """CC's images/s with on-device augmentation, and fed by a PIL ``DataLoader``, same step."""
    data = load_dataset("synthetic", options={"n": 8})
    from dataclasses import replace

    data = replace(data, train=replace(data.train, images=images), labels=labels)
    config = CCConfig(backbone="resnet18", image_size=size, batch_size=batch, epochs=1)
    trainer = Trainer(CC, config, data, LoopSettings(device=str(device), steps_per_epoch=2))
    trainer.train_epoch()  # warm-up
    trainer = Trainer(CC, config, data, LoopSettings(device=str(device), steps_per_epoch=steps))
    _sync(device)
    metrics = trainer.train_epoch()
    ours = metrics["images_per_s"]

    pil_views = TwoViewPIL(images.numpy(), size)
    loader = DataLoader(pil_views, batch_size=batch, shuffle=True, num_workers=workers,
                        drop_last=True, persistent_workers=workers > 0)  # fmt: skip
    method, optimizer = trainer.method, trainer.optimizer
    use_amp = device.type == "cuda"
    seen, start = 0, None
    for i, (va, vb) in enumerate(loader):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        if i > steps:
            break
        views = (va.to(device, non_blocking=True), vb.to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = method.training_step(Views(views=views, index=torch.arange(batch, device=device)))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if i >= 1:
            seen += batch
    _sync(device)
    baseline = seen / (time.perf_counter() - start) if start else float("nan")
    return ours, baseline


def bench_training(images: torch.Tensor, labels: torch.Tensor, size: int, batch: int, steps: int,
                   device: torch.device, workers: int) -> None:  # fmt: skip
    print(
        f"\n[2] CC training step, ResNet-18 at {size} px, batch {batch}, {steps} steps on {device}"
    )
    ours, baseline = training_rates(images, labels, size, batch, steps, device, workers)
    row("on-device augmentation (ours)", ours)
    row(
        f"PIL DataLoader ({workers} workers)",
        baseline,
        ratio=f"ours/DataLoader = {ours / baseline:.2f}x",
    )


def bench_knn(sizes: list[int], dim: int, k: int, device: torch.device) -> None:
    from sklearn.neighbors import NearestNeighbors

    from trainables.neighbours import knn

    print(f"\n[3] k-NN graph (k={k}, d={dim}): faiss on {device} vs scikit-learn NearestNeighbors")
    for n in sizes:
        x = torch.randn(n, dim, generator=torch.Generator().manual_seed(n))
        xd = x.to(device)
        _sync(device)
        start = time.perf_counter()
        knn(xd, k)
        _sync(device)
        t_faiss = time.perf_counter() - start
        xn = torch.nn.functional.normalize(x, dim=1).numpy()
        start = time.perf_counter()
        brute = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute")
        brute.fit(xn).kneighbors(xn)
        t_sk = time.perf_counter() - start
        print(f"    N={n:>7}: faiss {t_faiss:8.2f} s   sklearn {t_sk:8.2f} s", end="")
        print(f"   sklearn/faiss = {t_sk / t_faiss:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--images", type=int, default=512, help="images for the augmentation benchmark"
    )
    parser.add_argument("--knn-sizes", type=int, nargs="+", default=[2000, 10000, 20000])
    parser.add_argument("--knn-dim", type=int, default=128)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    data = load_dataset(
        "synthetic", options={"n": max(args.images, args.batch * (args.steps + 2)), "size": 32}
    )
    images, labels = data.train.images, data.labels
    bench_augment(images[: args.images], args.image_size, device, repeats=3)
    bench_training(images, labels, args.image_size, args.batch, args.steps, device, args.workers)
    bench_knn(args.knn_sizes, args.knn_dim, 10, device)


if __name__ == "__main__":
    main()
