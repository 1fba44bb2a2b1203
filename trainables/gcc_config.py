"""GCC's hyperparameters: the paper's and its official code's readings, side by side.

GCC's paper and code disagree on smoothing, warm-up, refresh period, neighbour lists, RGC
weights and denominator, and loss scale [CONFLICT]; :data:`PRESETS` holds each reading, and
``preset`` fills every key a study leaves unset (:mod:`trainables.gcc` trains with them).

``[CHOICE]`` and ``[CONFLICT]`` mark readings the paper does not settle (see :mod:`trainables`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from trainables.config import AugmentConfig, Closed, LossSwitches, MethodConfig, OptimConfig

#: The keys on which GCC's paper and its official code disagree, and each one's readings.
PRESETS: dict[str, dict[str, Any]] = {
    "code": {
        "smoothing": "window_mean",
        "graph_every": 5,
        "warmup_epochs": 51,
        "neighbour_list": "code",
        "rgc.weights": "code",
        "rgc.denominator": "code",
        "loss_scale": 2.0,
    },
    "paper": {
        "smoothing": "ema",
        "graph_every": 1,
        "warmup_epochs": 0,
        "neighbour_list": "paper",
        "rgc.weights": "paper",
        "rgc.denominator": "paper",
        "loss_scale": 1.0,
    },
}


class GCCLoss(LossSwitches):
    """GCC's loss terms (Eq. 11); Table 3 switches CR off, Table 5 keeps RGC alone."""

    rgc: bool = Field(True, description="L_RGC: graph contrast on representations (Eq. 8).")
    agc: bool = Field(True, description="L_AGC: graph contrast on assignments (Eq. 9).")
    cr: bool = Field(True, description="L_CR: cluster regularisation, log C − H (Eq. 10).")


class RGCConfig(Closed):
    """How RGC reads the graph (Table 2, Table 6) and which of its two versions it follows."""

    use_graph: bool = Field(
        True, description="Graph neighbours as positives (Table 2; false: own augmentation only)."
    )
    form: Literal["weighted", "multi_positive"] = Field(
        "weighted",
        description="weighted: Eq. 8's weighted positives; multi_positive: equal-weight "
        "positives, mean of logs (Table 6) [CHOICE on the exact form].",
    )
    weights: Literal["code", "paper"] = Field(
        "code",
        description="code: √(m/|S_j|) on each loaded neighbour's embedding and again on its "
        "positive term, own loaded neighbours only; paper: A_ij/√(d_i d_j) on every linked "
        "pair in the step, own augmentation weight 1 [CHOICE]. Preset-dependent.",
    )
    denominator: Literal["code", "paper"] = Field(
        "code",
        description="code: every non-positive including the anchor itself; paper: self "
        "excluded. Preset-dependent.",
    )


class AGCConfig(Closed):
    """Where AGC's partner assignments come from (Table 2)."""

    use_graph: bool = Field(
        True,
        description="A random graph neighbour (false: the anchor itself, augmented once more, "
        "as the code does before any graph exists).",
    )


class SelfLabelConfig(Closed):
    """SCAN's self-labelling as a second stage of the trial (GCC's Table 4; SCAN's configs)."""

    enabled: bool = Field(False, description="Run the self-labelling stage after training.")
    epochs: int = Field(200, ge=1, description="Self-labelling epochs (SCAN/GCC: 200).")
    threshold: float = Field(
        0.98, gt=0, lt=1, description="Confidence a prediction must exceed (GCC 0.98, SCAN 0.99)."
    )
    batch_size: int = Field(1000, ge=2, description="Batch size (SCAN/GCC: 1000).")
    lr: float = Field(5e-5, gt=0, description="Adam learning rate (GCC 5e-5, SCAN 1e-4).")
    weight_decay: float = Field(1e-4, ge=0, description="Adam weight decay (1e-4).")
    balance: bool = Field(
        True, description="Weigh the cross-entropy by inverse class frequency (SCAN)."
    )
    randaugment_ops: int = Field(4, ge=0, description="RandAugment ops per strong view (4).")
    cutout_fraction: float = Field(
        0.5, gt=0, le=1, description="Cutout square side as a share of the image (16 of 32 px)."
    )


def _gcc_optim() -> OptimConfig:
    # SGD 0.4, cosine to lr·0.1³ per epoch (GCC-code utils/common_config.py)
    return OptimConfig(
        name="sgd", lr=0.4, momentum=0.9, weight_decay=1e-4, schedule="cosine", min_lr_factor=1e-3
    )


def _gcc_augment() -> AugmentConfig:
    # A_SCAN without blur, normalised; the evaluation crop follows the resolution (below)
    return AugmentConfig(
        crop_scale=(0.2, 1.0),
        jitter_strength=0.5,
        blur=False,
        normalize=True,
        eval_center_crop=None,
    )


#: GCC's evaluation transform, Resize(r) then CenterCrop(size) (GCC's code): the share
#: of the side it keeps, by training resolution. Other sizes take CIFAR's 0.8 [CHOICE].
EVAL_CENTER_CROP = {32: 32 / 40, 64: 64 / 80, 96: 96 / 112}


class GCCConfig(MethodConfig):
    """GCC's hyperparameters (the paper's §4.1.4) and the paper/code presets."""

    preset: Literal["code", "paper"] = Field(
        "code",
        description="Fills every preset-dependent key not set explicitly: code (official "
        "repository) or paper (equations and Algorithm 1).",
    )
    epochs: int = Field(
        1000, ge=0, description="Training epochs (GCC's configs: 1000); 0: untrained."
    )
    batch_size: int = Field(
        256, ge=2, description="Batch size (256; the code uses 96 on STL/ImageNet, 128 on Tiny)."
    )
    backbone: Literal["resnet18", "resnet34", "resnet50", "cnn4"] = Field(
        "resnet18", description="ResNet-18 (the code uses ResNet-34 on Tiny-ImageNet)."
    )
    image_size: int | None = Field(None, ge=8, description="Native resolution (§4.2).")
    optim: OptimConfig = Field(default_factory=_gcc_optim)
    aug: AugmentConfig = Field(default_factory=_gcc_augment)
    knn_k: int = Field(5, ge=1, description="k of the data-set k-NN graph (§4.1.4: 5).")
    smoothing: Literal["window_mean", "ema"] = Field(
        "window_mean",
        description="Feature smoothing before mining: mean of the last smoothing_window "
        "(code) or EMA with ema_alpha (paper). Preset-dependent.",
    )
    smoothing_window: int = Field(4, ge=1, description="Window of the code's mean (4).")
    ema_alpha: float = Field(0.5, gt=0, le=1, description="EMA weight α of the paper (0.5).")
    graph_every: int = Field(
        5, ge=1, description="Epochs between graph rebuilds (code 5, paper 1). Preset-dependent."
    )
    warmup_epochs: int = Field(
        51,
        ge=0,
        description="SimCLR-only epochs before the first graph (code 51: epochs 0-50; paper "
        "0, whose first epoch still has no graph to read). Preset-dependent.",
    )
    neighbour_list: Literal["code", "paper"] = Field(
        "code",
        description="code: top-(k+1) lists including self, AGC draws from the list; paper: "
        "k-NN without self, 'or'-symmetric, AGC draws a graph neighbour. Preset-dependent.",
    )
    rgc_num_neighbors: int = Field(
        3, ge=1, description="Neighbour images loaded per anchor for RGC (m = 3; code: self + 2)."
    )
    rgc: RGCConfig = Field(default_factory=RGCConfig)
    agc: AGCConfig = Field(default_factory=AGCConfig)
    lambda_agc: float = Field(0.5, ge=0, description="Weight λ of L_AGC (§4.1.4: 0.5).")
    eta_cr: float = Field(1.0, ge=0, description="Weight η of L_CR (§4.1.4: 1.0; Table 3: 0).")
    tau_rgc: float = Field(0.1, gt=0, description="RGC temperature (0.1).")
    tau_agc: float = Field(1.0, gt=0, description="AGC temperature (1.0).")
    loss_scale: float = Field(
        2.0,
        gt=0,
        description="Multiplies every term: the code's 2·RGC + AGC + 2·CR is the paper's "
        "RGC + 0.5·AGC + CR times 2, which doubles SGD's step. Preset-dependent.",
    )
    eval_assign: Literal["argmax", "kmeans", "spectral"] = Field(
        "argmax",
        description="Final assignment: cluster-head argmax (GCC), or k-means / spectral "
        "clustering on z (Table 5).",
    )
    self_label: SelfLabelConfig = Field(default_factory=SelfLabelConfig)
    loss: GCCLoss = Field(default_factory=GCCLoss)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """Every preset-dependent key not given takes the preset's value."""
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "code")
        if preset not in PRESETS:
            return data  # the field's own validation names the allowed values
        filled = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        for dotted, value in PRESETS[preset].items():
            node = filled
            *parents, leaf = dotted.split(".")
            for part in parents:
                child = node.get(part)
                if child is None:
                    child = {}
                elif not isinstance(child, dict):
                    break  # a model instance: its own values stand
                node[part] = child = dict(child)
                node = child
            else:
                node.setdefault(leaf, value)
        return filled
