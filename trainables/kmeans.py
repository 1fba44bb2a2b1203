"""k-means on raw pixels: the first row of every deep-clustering results table.

Not a learning method but a baseline, so that a study, a report and ``ablate stats`` can
carry "k-means (pixels)" beside the methods it is meant to be beaten by: zero epochs, no
network, and k-means (faiss, every point, 10 restarts, as every method's k-means) on the
flattened pixels of the evaluation view (resized to ``image_size``, values in [0, 1], not
normalised). Grayscale images count once per channel copy, which scales every distance alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

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
    """k-means trains nothing: no loss term."""


class KMeansConfig(MethodConfig):
    """The pixel baseline's settings: no training, the evaluation view's resolution."""

    epochs: int = Field(0, ge=0, le=0, description="Always 0: nothing is trained.")
    image_size: int | None = Field(
        None, ge=8, description="Resolution the pixels are taken at; None: the data set's."
    )
    aug: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(normalize=False),
        description="Only the evaluation view is used: the whole image, resized, in [0, 1].",
    )
    loss: NoLoss = Field(default_factory=NoLoss)


@register_method("kmeans")
class KMeansPixels(Method[KMeansConfig]):
    """k-means on the pixels of the evaluation view; trains nothing."""

    config_class = KMeansConfig
    trains: ClassVar[bool] = False
    term_modules: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, config: KMeansConfig, data: TrainImages) -> None:
        super().__init__(config, data)
        self.network = torch.nn.ModuleDict()

    @property
    def assignment(self) -> Literal["kmeans"]:
        return "kmeans"

    def training_step(self, batch: Views) -> StepOutput:
        raise RuntimeError("the k-means baseline has no training step (epochs is always 0)")

    def embed(self, images: Tensor) -> Embedding:
        return Embedding(features=images.flatten(1))
