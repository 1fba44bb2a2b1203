"""Typed, closed hyperparameter configs shared by every method.

A method's config is the single place its defaults live (the paper's values), so that
`ablate methods` can print them and a study file can only name keys that exist. Configs are
frozen pydantic models with ``extra="forbid"``: a typo in a study is an error, never a silent
default. Nested models give dotted keys (``optim.lr``, ``loss.cluster``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class Closed(BaseModel):
    """Base of every config model: frozen, no unknown keys, validated defaults.

    A nested section given in part (``optim: {lr: 0.05}``, a study's ``optim.lr``) is merged
    into the method's own default for that section, not into the section class's defaults:
    GACL's SGD stays SGD when a study changes only its learning rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _merge_into_the_default(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict) or info.field_name is None:
            return value
        default = cls.model_fields[info.field_name].get_default(call_default_factory=True)
        if not isinstance(default, BaseModel):
            return value
        return _deep_merge(default.model_dump(), value)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, section by section."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class OptimConfig(Closed):
    """Optimiser and learning-rate schedule (per-epoch)."""

    name: Literal["adam", "sgd"] = Field("adam", description="Optimiser.")
    lr: float = Field(3e-4, gt=0, description="Base learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam).")
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="Per-epoch learning-rate schedule."
    )
    min_lr_factor: float = Field(
        1e-3, ge=0, le=1, description="Cosine schedule ends at lr * min_lr_factor."
    )


class AugmentConfig(Closed):
    """SimCLR-family augmentation settings; ``None`` takes the data set's default."""

    crop_scale: tuple[float, float] = Field(
        (0.08, 1.0), description="RandomResizedCrop area range (torchvision default)."
    )
    crop_ratio: tuple[float, float] = Field(
        (3 / 4, 4 / 3), description="RandomResizedCrop aspect-ratio range."
    )
    flip_p: float = Field(0.5, ge=0, le=1, description="Horizontal flip probability.")
    jitter_strength: float | None = Field(
        None,
        ge=0,
        description="Colour-jitter strength s: (0.8s, 0.8s, 0.8s, 0.2s). None: data set's.",
    )
    jitter_p: float = Field(0.8, ge=0, le=1, description="Colour-jitter probability.")
    grayscale_p: float = Field(0.2, ge=0, le=1, description="Random grayscale probability.")
    blur: bool | None = Field(None, description="Gaussian blur (p=0.5). None: data set's default.")
    blur_p: float = Field(0.5, ge=0, le=1, description="Gaussian-blur probability when on.")
    normalize: bool = Field(
        False, description="Normalise with the data set's mean/std (SCAN/GCC do, CC does not)."
    )
    eval_center_crop: float | None = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of the side the evaluation transform keeps, centred, before "
        "resizing (1: the whole image; GCC's Resize(40)+CenterCrop(32) is 0.8). None: the "
        "method's rule (GCC: its code's crop at each resolution).",
    )

    @model_validator(mode="after")
    def _ranges_ordered(self) -> AugmentConfig:
        for name in ("crop_scale", "crop_ratio"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(
                    f"{name} must satisfy 0 < low <= high; got {(low, high)}; use e.g. (0.08, 1.0)"
                )
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale high must be <= 1; got {self.crop_scale[1]}")
        return self


class LossSwitches(Closed):
    """Named booleans, one per loss term; a method's step reports its terms by these names."""

    def enabled(self) -> list[str]:
        """Names of the terms that are switched on."""
        return [name for name, on in self.model_dump().items() if on]

    @model_validator(mode="after")
    def _something_on(self) -> LossSwitches:
        if type(self).model_fields and not self.enabled():
            raise ValueError(
                "every loss term is switched off; at least one of "
                f"{', '.join(type(self).model_fields)} must be true"
            )
        return self


class MethodConfig(Closed):
    """Settings every method has. Subclasses override the defaults with their paper's values.

    ``loss`` is a model of named booleans, one per loss term, in each subclass.
    """

    epochs: int = Field(
        1000,
        ge=0,
        description="Training epochs; 0: the untrained network, clustered by k-means on its "
        "initial features (a baseline row).",
    )
    batch_size: int = Field(256, ge=2, description="Images per mini-batch (drop_last).")
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet34",
        description="ResNet depth (torchvision definition, random init); cnn4: a four-layer "
        "CNN, 256-d, the CPU proxy backbone (not a paper's).",
    )
    stem: Literal["auto", "cifar", "stl", "imagenet"] = Field(
        "auto",
        description="ResNet stem; auto: cifar (<=32 px), stl (<=96 px), imagenet (larger).",
    )
    image_size: int | None = Field(
        224, ge=8, description="Training/evaluation resolution; None: the data set's native size."
    )
    proj_dim: int = Field(128, ge=1, description="Instance projector output dimension.")
    optim: OptimConfig = Field(default_factory=OptimConfig)
    aug: AugmentConfig = Field(default_factory=AugmentConfig)
    loss: LossSwitches = Field(default_factory=LossSwitches, description="Loss-term switches.")

    def flat(self) -> dict[str, Any]:
        """The config as ``{dotted.key: value}``, the form studies and MLflow use."""
        return flatten(self.model_dump())


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict to dotted keys; tuples and lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to a nested dict (inverse of :func:`flatten`)."""
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"key {dotted!r} nests under {part!r}, which is a value")
            node = child
        node[leaf] = value
    return tree
