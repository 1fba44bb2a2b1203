"""CCES: the support set is read before it is written and starts from the trial's seed,
ContrastiveCrop views, and its studies. Each neighbour switch's pairs, in value and gradient,
are in test_whole_steps.py; the losses themselves (CC's) in test_losses.py."""

import torch

from tests.trainables.conftest import TINY
from trainables.cces import CCES, CCESConfig
from trainables.loop import LoopSettings, Trainer
from trainables.method import Views

SMALL = {**TINY, "support_size": 40}


def test_support_set_is_read_before_this_steps_features_join_it(synthetic, monkeypatch):
    """The queue holds the same images' features from an earlier step (close, not equal);
    had the step pushed before its look-up, every query would find its own feature."""
    torch.manual_seed(0)
    method = CCES(CCESConfig(**SMALL), synthetic.train)
    index = torch.arange(16)
    images = synthetic.train.images[index]
    earlier = method.make_views(images, index, "main", torch.Generator().manual_seed(5))
    method.training_step(Views(views=earlier, index=index))
    before = method.support.bank.clone()
    found = []
    nearest = method.support.nearest
    monkeypatch.setattr(
        method.support, "nearest", lambda q, m: found.append(nearest(q, m)) or found[-1]
    )
    views = method.make_views(images, index, "main", torch.Generator().manual_seed(6))
    method.training_step(Views(views=views, index=index))
    with torch.no_grad():
        xi_1 = method.network["backbone"](views[0])
    (used,) = found
    assert torch.equal(used, before[torch.cdist(xi_1, before).argmin(dim=1)])  # the old queue
    assert torch.cdist(used, xi_1).diagonal().min() > 1e-3  # never the query's own feature
    after = method.support.bank
    assert torch.allclose(after[16:32], xi_1, atol=1e-5)  # then the batch is pushed, FIFO
    assert torch.equal(after[:16], before[:16]) and torch.equal(after[32:], before[32:])
    assert int(method.support.pointer) == 32


def test_support_set_starts_from_the_trials_seed(synthetic):
    def initial(seed):
        trainer = Trainer(CCES, CCESConfig(**SMALL), synthetic, LoopSettings(seed=seed))
        return trainer.method.support.bank

    assert torch.equal(initial(1), initial(1))
    assert not torch.allclose(initial(1), initial(2))  # replicates differ here too
    assert torch.allclose(initial(2).norm(dim=1), torch.ones(40))


def test_with_both_switches_the_backbone_learns_through_view_two_only(synthetic):
    method = CCES(CCESConfig(**SMALL), synthetic.train)
    index = torch.arange(16)
    images = synthetic.train.images[index]
    views = method.make_views(images, index, "main", torch.Generator().manual_seed(0))
    x_1 = views[0].clone().requires_grad_(True)
    out = method.training_step(Views(views=(x_1, views[1]), index=index))
    out.loss.backward()
    # view 1's features reach the loss only through the detached neighbour look-up
    assert x_1.grad is None or torch.all(x_1.grad == 0)


def test_contrastive_crop_views_stay_near_the_centre(synthetic):
    aug = {"flip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0, "crop_scale": (0.1, 0.1)}
    method = CCES(CCESConfig(**{**SMALL, "aug": aug, "image_size": 16}), synthetic.train)
    images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    images[:, :, 4:12, 4:12] = 255  # a bright centre box
    views = method.make_views(images, torch.arange(64), "main", torch.Generator().manual_seed(2))
    random_method = CCES(
        CCESConfig(**{**SMALL, "aug": aug, "image_size": 16, "crop": "random"}), synthetic.train
    )
    random_views = random_method.make_views(
        images, torch.arange(64), "main", torch.Generator().manual_seed(2)
    )
    # small crops centred in the box are mostly bright; uniformly placed ones mostly dark
    assert views[0].mean() > random_views[0].mean() + 0.2
    assert not torch.allclose(views[0], views[1])


def test_default_config_is_the_papers():
    config = CCESConfig()
    assert (config.epochs, config.backbone, config.image_size, config.support_size) == (
        1200,
        "resnet34",
        224,
        65536,
    )
    assert (config.tau_instance, config.tau_cluster, config.crop) == (0.2, 1.0, "contrastive")
    assert (config.optim.name, config.optim.lr) == ("adam", 1e-4)
    assert config.nn.instance and config.nn.cluster and config.nn.metric == "l2"
    assert config.ccrop.box == (0.25, 0.25, 0.75, 0.75) and config.ccrop.alpha == 0.6
