"""NNCC: Eq. 10's positive set, T distinct views, T = 0, mining from the current model, the
two stages and their augmentations, and a shared pretext restored exactly by a second trial.

FINCH's first-neighbour adjacency and its batch mask are tested against the brute-force rule
(including the "same first neighbour" case) in test_neighbours.py; the multi-positive loss
itself against a loop in test_losses.py; the whole step against a loop in test_whole_steps.py.
"""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from ablate import keyed_store
from ablate.keyed_store import Busy, Claimed, KeyedStore, Published
from ablate.stage_sharing import StageSharing, stage_material
from tests.trainables import reference_losses
from tests.trainables.conftest import TINY
from tests.trainables.gloo import free_port, join
from trainables import neighbours
from trainables.datasets import load_dataset
from trainables.loop import LoopSettings, Trainer
from trainables.method import Views
from trainables.nncc import NNCC, NNCCConfig

NNCC_ONLY = {**TINY, "pretext": {"epochs": 0}, "num_augs": 2}


def _method(synthetic, **overrides):
    torch.manual_seed(0)
    return NNCC(NNCCConfig(**{**NNCC_ONLY, **overrides}), synthetic.train)


def _pairs(mask):
    return {(int(r), int(q)) for r, q in mask.nonzero()}


def test_positive_set_of_eq_10_on_a_hand_made_batch(synthetic):
    """M = 3 images, T = 2: rows 0-2 anchor views, 3-5 and 6-8 augmented; images 0 and 1 are
    first-neighbour relations, image 2 has none."""
    related = torch.zeros(3, 3, dtype=torch.bool)
    related[0, 1] = related[1, 0] = True
    literal = _method(synthetic, nncc={"positives": "literal"}).positive_mask(related, 3)
    # Eq. 10: anchor i's positives are its augmented views and its relations' augmented views;
    # the relation's anchor view (row 1 for anchor 0) stays a negative (Eq. 11)
    assert _pairs(literal) == {
        (0, 3), (0, 6), (0, 4), (0, 7),
        (1, 4), (1, 7), (1, 3), (1, 6),
        (2, 5), (2, 8),
    }  # fmt: skip
    symmetric = _method(synthetic).positive_mask(related, 3)
    off_diagonal = _pairs(symmetric & ~torch.eye(9, dtype=torch.bool))
    group_01 = {0, 1, 3, 4, 6, 7}  # every view of images 0 and 1
    group_2 = {2, 5, 8}
    expected = {(r, q) for g in (group_01, group_2) for r in g for q in g if r != q}
    assert off_diagonal == expected


def test_views_are_an_anchor_and_t_distinct_draws(synthetic):
    method = _method(synthetic, num_augs=4)
    images, index = synthetic.train.images[:8], torch.arange(8)
    views = method.make_views(images, index, "main", torch.Generator().manual_seed(0))
    assert len(views) == 5
    assert torch.equal(views[0], method.augmenter.evaluation(images))  # the anchor view
    for i in range(1, 5):
        for j in range(i + 1, 5):
            assert not torch.allclose(views[i], views[j]), (i, j)
    augmented = _method(synthetic, num_augs=2, nncc={"anchor_view": "augmented"})
    views = augmented.make_views(images, index, "main", torch.Generator().manual_seed(0))
    assert not torch.allclose(views[0], augmented.augmenter.evaluation(images))


def test_zero_augmentations_keep_only_the_relations_as_positives(synthetic):
    method = _method(synthetic, num_augs=0)
    method.start_stage("nncc")
    index = torch.arange(32)
    views = method.make_views(
        synthetic.train.images[index], index, "main", torch.Generator().manual_seed(0)
    )
    assert len(views) == 1  # the anchor view alone
    out = method.training_step(Views(views=views, index=index))
    with torch.no_grad():
        z = method.encode(views[0]).double()
    related = neighbours.first_neighbour_mask(index, method.kappa)
    assert related.any()
    assert torch.allclose(
        out.loss.double(), reference_losses.multi_positive(z, related, 0.1), atol=1e-4
    )
    lonely = torch.tensor([0])  # one image: no relation in the batch, nothing to contrast
    out = method.training_step(Views(views=(views[0][:1],), index=lonely))
    assert out.loss.item() == 0 and out.loss.requires_grad
    with pytest.raises(ValueError, match="only FINCH relations"):
        NNCCConfig(num_augs=0, finch={"enabled": False})
    with pytest.raises(ValueError, match="has no positive"):
        NNCCConfig(num_augs=0, nncc={"positives": "literal"})


def test_mining_is_the_first_neighbour_of_the_current_model(synthetic):
    method = _method(synthetic)
    assert torch.equal(method.kappa, torch.arange(32))  # nothing related before mining
    method.start_stage("nncc")
    method.network.eval()
    with torch.no_grad():
        z = method.encode(method.augmenter.evaluation(synthetic.train.images))
    sims = z @ z.T
    sims.fill_diagonal_(-2.0)
    assert torch.equal(method.kappa, sims.argmax(dim=1))
    off = _method(synthetic, finch={"enabled": False})
    off.start_stage("nncc")
    assert not off.relations(torch.arange(8), torch.randn(8, 128)).any()


def test_components_are_finchs_first_partition(synthetic):
    method = _method(synthetic, finch={"use_components": True})
    method.start_stage("nncc")
    related = method.relations(torch.arange(32), torch.randn(32, 128))
    direct = neighbours.first_neighbour_mask(torch.arange(32), method.kappa)
    assert torch.all(related | ~direct)  # components contain every direct relation
    reach = direct | torch.eye(32, dtype=torch.bool)
    for _ in range(32):  # transitive closure of the direct relations
        reach = (reach.float() @ reach.float() > 0) | reach
    assert torch.equal(related, reach & ~torch.eye(32, dtype=torch.bool))


def test_stages_pretext_then_nncc_with_their_own_settings():
    stages = NNCC.stages(NNCCConfig())
    assert [(s.name, s.epochs, s.batch_size, s.optim.lr) for s in stages] == [
        ("pretext", 500, 512, 0.4),
        ("nncc", 500, 128, 0.03),
    ]
    assert stages[0].shared is not None and stages[1].shared is None
    assert [s.name for s in NNCC.stages(NNCCConfig(epochs=0))] == ["pretext"]  # pretext+k-means
    a, b = NNCC.stages(NNCCConfig(num_augs=1)), NNCC.stages(NNCCConfig(finch={"enabled": False}))
    assert a[0] == b[0]  # the NNCC stage's settings leave the pretext's key alone
    untrained = NNCC.stages(NNCCConfig(epochs=0, pretext={"epochs": 0}))
    assert [(s.name, s.epochs) for s in untrained] == [("nncc", 0)]  # the untrained network


def test_pretext_augments_as_scan_without_the_nncc_stages_blur(synthetic):
    """SCAN's pretext has no blur; CC's blur belongs to the NNCC stage only (erratum)."""
    pretext, nncc = NNCC.stages(NNCCConfig())
    assert pretext.aug is not None and pretext.aug.blur is False and nncc.aug is None
    assert NNCCConfig().aug.blur is True
    assert pretext.shared is not None and pretext.shared["aug"]["blur"] is False
    # the NNCC stage's augmentation leaves the shared pretext alone; the pretext's does not
    assert NNCC.stages(NNCCConfig(aug={"blur": False}))[0] == pretext
    assert NNCC.stages(NNCCConfig(pretext={"aug": {"crop_scale": (0.5, 1.0)}}))[0] != pretext
    trainer = Trainer(NNCC, NNCCConfig(**TWO_STAGE), synthetic, LoopSettings(steps_per_epoch=1))
    assert trainer.method.stage == "pretext" and trainer.method.augmenter.settings.blur_p == 0
    trainer.train_epoch()
    trainer.train_epoch()
    trainer.train_epoch()  # the first NNCC epoch
    assert trainer.method.stage == "nncc" and trainer.method.augmenter.settings.blur_p == 0.5


TWO_STAGE = {
    **TINY,
    "backbone": "cnn4",  # the store is under test here, not the network: the smallest one
    "epochs": 1,
    "num_augs": 2,
    "pretext": {"epochs": 2, "batch_size": 16},
}


def _trainer(synthetic, store, **overrides):
    config = NNCCConfig(**{**TWO_STAGE, **overrides})
    settings = LoopSettings(seed=5, steps_per_epoch=2, eval_every=100)
    hooks = None if store is None else StageSharing(store)
    return Trainer(NNCC, config, synthetic, settings, hooks)


def test_second_trial_restores_the_first_ones_pretext_exactly(synthetic, tmp_path):
    store = KeyedStore(tmp_path / "stages", {"dataset": "synthetic"}, owner="first")
    first_notes = []
    _trainer(synthetic, store).fit(lambda r, t: first_notes.append(r.notes))
    assert list(first_notes[1].values())[0].startswith("published ")

    reports = []
    second = _trainer(synthetic, store, finch={"enabled": False})  # another NNCC-stage variant
    final = second.fit(lambda r, t: reports.append(r))
    assert [r.epoch for r in reports] == [2, 3]  # the pretext's two epochs are one report
    note = reports[0].notes["stage_cache.pretext"]
    assert note == first_notes[1]["stage_cache.pretext"].replace("published", "reused")
    assert reports[0].evaluated  # the pretext's own k-means score, as the first trial had

    alone = _trainer(synthetic, None, finch={"enabled": False})  # trains its own pretext
    expected = alone.fit()
    assert final.metrics["loss"] == expected.metrics["loss"]
    params = zip(alone.method.network.parameters(), second.method.network.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in params)


def test_a_different_pretext_is_not_reused(synthetic, tmp_path):
    store = KeyedStore(tmp_path / "stages", {"dataset": "synthetic"})
    _trainer(synthetic, store).fit()
    notes = []
    _trainer(synthetic, store, pretext={"epochs": 2, "batch_size": 16, "tau": 0.2}).fit(
        lambda r, t: notes.append(r.notes)
    )
    assert list(notes[1].values())[0].startswith("published ")
    assert len(list((tmp_path / "stages").glob("*/state.pt"))) == 2


def test_claim_makes_a_concurrent_trial_wait_for_the_stage(tmp_path):
    material = {"stage": "pretext"}
    first = KeyedStore(tmp_path, {}, owner="a", poll_s=0.02)
    second = KeyedStore(tmp_path, {}, owner="b", poll_s=0.02)
    assert first.wait(material) == Claimed()  # claimed: a trains it
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("found", second.wait(material)))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive() and "found" not in got  # b waits rather than train it again
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "state.pt").write_text("state")
    first.publish(material, tmp_path / "made")
    waiter.join(timeout=5)
    assert isinstance(got["found"], Published)
    assert (got["found"].folder / "state.pt").read_text() == "state"
    assert first.manifest(material)["produced_by"] == "a"


CLAIM_AND_DIE = """
import sys, time
from pathlib import Path
from ablate.keyed_store import Claimed, KeyedStore
store = KeyedStore(Path(sys.argv[1]), {}, owner="crashed")
assert store.look({"stage": "pretext"}) == Claimed()
print("claimed", flush=True)
time.sleep(600)
"""


def test_a_dead_trials_claim_is_free_at_once_and_taken_by_exactly_one(tmp_path):
    """No staleness to wait out (its lock died with it), and no take-over race: of two
    waiters that look at once, one claims and the other waits."""
    material = {"stage": "pretext"}
    crashed = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_DIE, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert crashed.stdout.readline().strip() == "claimed"
    first, second = (KeyedStore(tmp_path, {}, owner=t, poll_s=0.01) for t in ("b", "c"))
    assert first.look(material) == Busy()  # alive: its claim holds
    crashed.send_signal(signal.SIGKILL)
    crashed.wait()
    looks = []
    barrier = threading.Barrier(2)

    def look(store):
        barrier.wait()
        looks.append(store.look(material))

    threads = [threading.Thread(target=look, args=(store,)) for store in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(looks, key=str) == [Busy(), Claimed()]
    claim = tmp_path / f"{first.key(material)}.claim"
    assert claim.read_text().split()[0] in ("b", "c")


def test_a_failed_publish_releases_the_claim(tmp_path, monkeypatch):
    material = {"stage": "pretext"}
    owner = KeyedStore(tmp_path, {}, owner="a")
    assert owner.look(material) == Claimed()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    made = tmp_path / "made"
    made.mkdir()
    (made / "state.pt").write_text("state")
    monkeypatch.setattr(keyed_store.KeyedStore, "_write_manifest", disk_full)
    with pytest.raises(OSError, match="No space left"):
        owner.publish(material, made)
    monkeypatch.undo()
    assert KeyedStore(tmp_path, {}, owner="b").look(material) == Claimed()  # free to retrain
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # no half stage left


def test_a_trial_resumed_inside_the_pretext_still_publishes_it(synthetic, tmp_path):
    """Its claim is not in the checkpoint; it used to resume unclaimed and never publish, so
    every waiting trial trained the pretext again."""
    store = KeyedStore(tmp_path / "stages", {"dataset": "synthetic"}, owner="first")
    first = _trainer(synthetic, store, pretext={"epochs": 3, "batch_size": 16})

    def crash_after_one_epoch(report, trainer):
        trainer.save(tmp_path / "checkpoint.pt")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        first.fit(crash_after_one_epoch)
    material = stage_material(first, 0)
    assert store.published(material) is None

    again = KeyedStore(tmp_path / "stages", {"dataset": "synthetic"}, owner="first")
    resumed = _trainer(synthetic, again, pretext={"epochs": 3, "batch_size": 16})
    resumed.restore(tmp_path / "checkpoint.pt")
    assert resumed.epoch == 1
    notes = []
    resumed.fit(lambda report, trainer: notes.append(report.notes))
    assert list(notes[1].values()) == [f"published {again.key(material)}"]  # at epoch 3
    assert again.published(material) is not None

    alone = _trainer(synthetic, None, pretext={"epochs": 3, "batch_size": 16})
    for _ in range(3):
        alone.train_epoch()
    published = torch.load(again.published(material) / "state.pt", weights_only=True)["network"]
    assert all(
        torch.equal(published[k], v) for k, v in alone.method.network.state_dict().items()
    )  # what a waiting trial restores is what it would have trained


def _rank_waits_for_a_claimed_stage(rank, port, root, to_main, go):
    """One rank of a 2-worker trial whose pretext another trial holds longer than the
    process group's timeout (3 s here; 30 min by default, shorter than a 500-epoch pretext)."""
    import torch.distributed as dist

    join(rank, port, timeout_s=3)
    try:
        data = load_dataset("synthetic", options={"n": 32, "classes": 4, "size": 16})
        store = KeyedStore(Path(root), {"dataset": "synthetic"}, owner="two-workers", poll_s=0.2)
        trainer = _trainer(data, store)
        if rank == 0:
            to_main.put(stage_material(trainer, 0))
        go.wait(timeout=60)
        notes = []
        trainer.fit(lambda report, t: notes.append(report.notes))
        to_main.put((rank, [n for n in notes if n]))
    except Exception as error:  # noqa: BLE001 - reported to the test, which fails with it
        to_main.put((rank, f"{type(error).__name__}: {error}"))
    finally:
        dist.destroy_process_group()


def test_ranks_of_a_multi_worker_trial_wait_together_past_the_group_timeout(tmp_path):
    import torch.multiprocessing as mp

    port = free_port()
    ctx = mp.get_context("spawn")
    to_main, go = ctx.Queue(), ctx.Event()
    ranks = [
        ctx.Process(
            target=_rank_waits_for_a_claimed_stage, args=(r, port, str(tmp_path), to_main, go)
        )
        for r in range(2)
    ]
    for rank in ranks:
        rank.start()
    material = to_main.get(timeout=120)
    other = KeyedStore(tmp_path, {"dataset": "synthetic"}, owner="another")
    assert other.look(material) == Claimed()  # another trial trains this pretext
    go.set()
    time.sleep(8)  # both ranks wait, well past the 3 s timeout of their process group
    other.release(material)  # it stopped without publishing: the trial trains it itself
    results = dict(to_main.get(timeout=120) for _ in ranks)
    for rank in ranks:
        rank.join(timeout=60)
    assert not any(isinstance(r, str) for r in results.values()), results
    assert results[0] == [{"stage_cache.pretext": f"published {other.key(material)}"}]
