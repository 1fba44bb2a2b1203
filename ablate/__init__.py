"""ablate: ablation studies and hyperparameter searches of contrastive clustering methods."""

__version__ = "0.1.0"
