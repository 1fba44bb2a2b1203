"""Display names: every catalogue data set and option reads as papers print it, and a study's
``analysis.names`` overrides any label."""

import typing

import pytest

from ablate.study import Baseline, DatasetEntry
from analysis import run_schema
from analysis.names import DisplayNames
from trainables.datasets import CATALOGUE, dataset_title, read_label

PAPER = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100-20",
    "stl10": "STL-10",
    "imagenet10": "ImageNet-10",
    "imagenet_dogs": "ImageNet-Dogs",
    "tiny_imagenet": "Tiny-ImageNet",
    "fashion_mnist": "Fashion-MNIST",
    "digits": "Digits",
}


def test_every_data_set_has_its_published_name():
    for name, title in PAPER.items():
        assert dataset_title(DatasetEntry(name=name).label) == title
    assert set(CATALOGUE) - set(PAPER) == {"synthetic"}


@pytest.mark.parametrize(
    ("entry", "title"),
    [
        ({"name": "digits", "size": 16}, "Digits (16 px)"),
        ({"name": "fashion_mnist", "subset": 10000}, "Fashion-MNIST (10,000-image subset)"),
        (
            {"name": "fashion_mnist", "subset": 500, "subset_seed": 3},
            "Fashion-MNIST (500-image subset, subset seed 3)",
        ),
        ({"name": "stl10", "unlabeled": True}, "STL-10 (with the unlabelled split)"),
        ({"name": "stl10", "unlabeled": False}, "STL-10"),
        ({"name": "imagenet_dogs", "size": 64}, "ImageNet-Dogs (64 px)"),
        (
            {"name": "synthetic", "n": 32, "size": 8, "seed": 1},
            "Synthetic (32 images, seed 1, 8 px)",
        ),
    ],
)
def test_options_that_change_the_protocol_read_as_words(entry, title):
    label = DatasetEntry.model_validate(entry).label
    assert read_label(label) == (entry["name"], {k: v for k, v in entry.items() if k != "name"})
    assert dataset_title(label) == title


def test_labels_the_catalogue_does_not_know_stay_as_they_are():
    for label in ("c10", "cifar10_foo", "digits_size", "CIFAR-10"):
        assert dataset_title(label) == label


def test_overrides_come_first_then_published_names():
    names = DisplayNames(
        {"no_aug": "w/o L_aug", "digits_size16": "Digits", "acc": "Accuracy"}, "gacl"
    )
    assert names.row("gacl:no_aug") == "w/o L_aug" and names.row("gacl:full") == "full"
    assert names.row("cc:full") == "cc:full"  # another method's row keeps its method
    assert names.row("kmeans:pixels") == "k-means (pixels)"
    assert names.row("untrained") == "k-means (untrained network)"
    assert (
        names.dataset("digits_size16") == "Digits" and names.dataset("cifar100") == "CIFAR-100-20"
    )
    assert names.metric("acc") == "Accuracy" and names.metric("nmi") == "NMI"
    assert names.metric("knn_label_acc") == "kNN ACC" and names.metric("loss") == "LOSS"


def test_the_baseline_rows_are_one_list():
    assert set(typing.get_args(Baseline)) == set(run_schema.BASELINE_ROWS)
