"""A method registered only in tests: its ACC is set by its config, so a verdict is known.

``synthetic_effect`` trains nothing. It clusters the synthetic data set (:func:`make_synthetic`:
one hue per class) by each image's hue, which is exact, then moves a fraction of the images to
the next cluster: ``flip − effect`` plus a seeded normal draw of sd ``noise`` for this seed and
this ``stream`` (one stream per variant, so two variants differ by their effects and noise).
The images it moves are the same for every variant of a seed (a draw of the trial's seed): a
variant's ACC is about ``1 − flip + effect + noise``, and a row's paired differences are its
effect plus noise. The ablation tests load it in every Ray worker through
``ABLATE_METHOD_MODULES=tests.sequential_method``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from trainables.config import AugmentConfig, LossSwitches, MethodConfig
from trainables.lazy import lazy
from trainables.method import Embedding, Method, StepOutput, Views
from trainables.registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from trainables.datasets import TrainImages
else:
    torch = lazy("torch")


class NoLoss(LossSwitches):
    """Nothing is trained."""


class SyntheticEffectConfig(MethodConfig):
    """The effect, noise and stream of a variant; nothing else is read."""

    epochs: int = Field(0, ge=0, le=0)
    image_size: int | None = Field(None, ge=8)
    aug: AugmentConfig = Field(default_factory=lambda: AugmentConfig(normalize=False))
    loss: NoLoss = Field(default_factory=NoLoss)
    flip: float = Field(0.3, ge=0, le=0.5)
    effect: float = 0.0
    noise: float = Field(0.02, ge=0)
    stream: int = Field(0, ge=0)


@register_method("synthetic_effect")
class SyntheticEffect(Method[SyntheticEffectConfig]):
    """Hue clusters with a set fraction of images moved to a wrong cluster."""

    config_class = SyntheticEffectConfig
    trains: ClassVar[bool] = False
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, config: SyntheticEffectConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        self.network = torch.nn.ModuleDict()
        seed = torch.initial_seed()  # the trial's seed (the loop seeds before building)
        draw = np.random.default_rng([seed, config.stream]).standard_normal()
        self.moved = min(max(config.flip - config.effect + config.noise * draw, 0.0), 1.0)
        self.uniform = torch.Generator().manual_seed(seed)
        hues = np.arange(data.num_clusters) / data.num_clusters
        phases = 2 * math.pi * (hues[:, None] + np.array([0, 1 / 3, 2 / 3])[None, :])
        self.prototypes = torch.tensor(np.cos(phases), dtype=torch.float32)  # class × RGB

    @property
    def assignment(self) -> Literal["argmax"]:
        return "argmax"

    def training_step(self, batch: Views) -> StepOutput:
        raise RuntimeError("synthetic_effect trains nothing (epochs is always 0)")

    def embed(self, images: Tensor) -> Embedding:
        colour = images.float().mean(dim=(2, 3))  # batch × RGB
        chroma = colour - colour.mean(dim=1, keepdim=True)
        cluster = (chroma @ self.prototypes.T).argmax(dim=1)
        moved = torch.rand(len(cluster), generator=self.uniform) < self.moved
        cluster = torch.where(moved, (cluster + 1) % self.num_clusters, cluster)
        probs = torch.nn.functional.one_hot(cluster, self.num_clusters).float()
        return Embedding(features=probs, cluster_probs=probs)
