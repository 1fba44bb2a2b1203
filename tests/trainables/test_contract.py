"""One suite over every registered method: a new method passes it by being registered."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.trainables.conftest import TINY
from trainables.datasets import TrainImages
from trainables.loop import LoopSettings, Trainer
from trainables.method import Views
from trainables.registry import registered_methods

METHODS = sorted(registered_methods())
#: Methods that train (the k-means baseline has no step, no network and no state).
TRAINED = [name for name in METHODS if registered_methods()[name].trains]
#: Per-method settings that make the first step a full one: GCC's SimCLR warm-up would
#: otherwise leave AGC and CR idle for 51 epochs (its warm-up has tests of its own).
FULL_FROM_THE_START = {
    "gcc": {"warmup_epochs": 0, "graph_every": 1, "knn_k": 3},
    "nncc": {"pretext": {"epochs": 0}, "num_augs": 3},
    "kmeans": {"epochs": 0},  # a baseline: never trains
}


def _tiny(method_class):
    return {**TINY, **FULL_FROM_THE_START.get(method_class.name, {})}


def _switch_variants(method_class):
    """All switches on, then each switch off alone (where the config allows it)."""
    loss_model = method_class.config_class.model_fields["loss"].annotation
    variants = [{}]
    for name in loss_model.model_fields:
        variants.append({name: False})
    out = []
    for off in variants:
        try:
            out.append(method_class.config_class(**_tiny(method_class), loss=off))
        except ValueError:
            continue
    return out


def _step(method_class, config, data, seed=0):
    torch.manual_seed(seed)
    method = method_class(config, data.train)
    images = data.train.images[:16]
    views = method.make_views(images, torch.arange(16), "main", torch.Generator().manual_seed(seed))
    out = method.training_step(Views(views=views, index=torch.arange(16)))
    return method, out


def test_registry_is_exactly_the_landed_methods():
    assert set(METHODS) == {"cc", "cces", "gacl", "gcc", "ghdcc", "nncc", "kmeans"}
    assert set(METHODS) - set(TRAINED) == {"kmeans"}


@pytest.mark.parametrize("name", METHODS)
def test_builds_from_defaults(name, synthetic):
    method_class = registered_methods()[name]
    config = method_class.config_class()
    method = method_class(config, synthetic.train)
    parameters = sum(p.numel() for p in method.network.parameters())
    assert (parameters > 0) == method_class.trains
    assert set(method_class.term_modules) == set(type(config.loss).model_fields)


@pytest.mark.parametrize("name", TRAINED)
def test_step_terms_and_gradient_coverage(name, synthetic):
    method_class = registered_methods()[name]
    for config in _switch_variants(method_class):
        method, out = _step(method_class, config, synthetic)
        enabled = config.loss.enabled()
        assert torch.isfinite(out.loss)
        assert set(out.terms) == set(enabled), (config.loss, set(out.terms))
        assert torch.allclose(out.loss, torch.stack(list(out.terms.values())).sum())
        out.loss.backward()
        used = {m for term in enabled for m in method_class.term_modules[term]}
        for module_name, module in method.network.items():
            grads = [p.grad for p in module.parameters() if p.requires_grad]
            if module_name in used:
                assert all(g is not None for g in grads), (
                    f"{name}: {module_name} lacks gradients ({enabled})"
                )
                assert any(g.abs().sum() > 0 for g in grads), (
                    f"{name}: {module_name} got zero gradients"
                )
            else:
                assert all(g is None for g in grads), (
                    f"{name}: {module_name} got gradients with {enabled}"
                )


@pytest.mark.parametrize("name", TRAINED)
def test_restore_gives_identical_next_epoch(name, synthetic, tmp_path):
    method_class = registered_methods()[name]
    config = method_class.config_class(**_tiny(method_class))
    settings = LoopSettings(seed=3, steps_per_epoch=2, eval_every=100)
    first = Trainer(method_class, config, synthetic, settings)
    first.train_epoch()
    saved = first.save(tmp_path / "checkpoint.pt")
    expected = first.train_epoch()
    expected_params = [p.detach().clone() for p in first.method.network.parameters()]
    expected_extra = first.method.extra_state()

    second = Trainer(
        method_class, config, synthetic, LoopSettings(seed=99, steps_per_epoch=2, eval_every=100)
    )
    second.restore(saved)  # weights_only: every method's state is plain data and tensors
    got = second.train_epoch()
    for a, b in zip(expected_params, second.method.network.parameters(), strict=True):
        assert torch.equal(a, b)
    for key in ("loss", *[f"loss_{t}" for t in config.loss.enabled()]):
        assert got[key] == expected[key]
    _assert_same_state(expected_extra, second.method.extra_state())


def _assert_same_state(expected, got):
    """Nested dicts of tensors (banks, queues, pointers) are equal leaf by leaf."""
    assert set(expected) == set(got)
    for key, value in expected.items():
        if isinstance(value, dict):
            _assert_same_state(value, got[key])
        else:
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(got[key])), key


@pytest.mark.parametrize("name", TRAINED)
def test_training_never_reads_labels(name, synthetic):
    """Two steps with the labels permuted train bit for bit the same network and state."""
    assert {f.name for f in dataclasses.fields(Views)} == {"views", "index", "source"}
    assert {f.name for f in dataclasses.fields(TrainImages)} == {"images", "info", "unlabeled"}
    method_class = registered_methods()[name]
    config = method_class.config_class(**_tiny(method_class))
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(4))
    relabelled = dataclasses.replace(synthetic, labels=synthetic.labels[perm])
    assert not torch.equal(relabelled.labels, synthetic.labels)
    runs = []
    for data in (synthetic, relabelled):
        trainer = Trainer(method_class, config, data, LoopSettings(seed=5, steps_per_epoch=2))
        metrics = trainer.train_epoch()
        runs.append((trainer, {k: v for k, v in metrics.items() if k.startswith("loss")}))
    (first, first_losses), (second, second_losses) = runs
    assert first_losses == second_losses and len(first_losses) > 1
    for a, b in zip(
        first.method.network.state_dict().values(),
        second.method.network.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    _assert_same_state(first.method.extra_state(), second.method.extra_state())


def _permuted(data, perm):
    """The same images and labels, listed in another order."""
    train = dataclasses.replace(data.train, images=data.train.images[perm])
    return dataclasses.replace(data, train=train, labels=data.labels[perm])


@pytest.mark.parametrize("name", METHODS)
def test_evaluation_does_not_depend_on_the_order_of_the_data_set(name, class_sorted):
    """The same trained network clusters the same images alike, however the data set lists
    them: per-batch graphs (GHDCC) and k-means see the same batches and points."""
    method_class = registered_methods()[name]
    overrides = {"eval_graph_batch": 16} if name == "ghdcc" else {}
    config = method_class.config_class(**_tiny(method_class), **overrides)
    settings = LoopSettings(seed=0, steps_per_epoch=1, eval_batch_size=16)
    trained = Trainer(method_class, config, class_sorted, settings)
    if method_class.trains:
        trained.train_epoch()
    perm = torch.randperm(class_sorted.labels.shape[0], generator=torch.Generator().manual_seed(1))
    other = Trainer(method_class, config, _permuted(class_sorted, perm), settings)
    other.method.network.load_state_dict(trained.method.network.state_dict())
    assert np.array_equal(other.assign(), trained.assign()[perm.numpy()])
