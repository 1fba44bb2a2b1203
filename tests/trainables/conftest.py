import dataclasses

import pytest
import torch

from trainables.datasets import load_dataset

#: Overrides that every method accepts (they are MethodConfig fields) and that keep a CPU
#: step to a few milliseconds: the 4-layer proxy network (a method's terms and state do not
#: depend on the backbone; test_backbones_heads covers the ResNets, 20 times slower here).
TINY = {"backbone": "cnn4", "image_size": 16, "batch_size": 16, "epochs": 3}


@pytest.fixture(scope="session")
def synthetic():
    return load_dataset("synthetic", options={"n": 32, "classes": 4, "size": 16})


@pytest.fixture(scope="session")
def class_sorted():
    """Listed class by class, as the ImageNet subsets and Tiny-ImageNet are on disk."""
    data = load_dataset("synthetic", options={"n": 96, "classes": 4, "size": 16})
    order = torch.argsort(data.labels, stable=True)
    train = dataclasses.replace(data.train, images=data.train.images[order])
    return dataclasses.replace(data, train=train, labels=data.labels[order])
