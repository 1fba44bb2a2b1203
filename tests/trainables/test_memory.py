"""Moving-average bank and FIFO support set."""

import torch
import torch.nn.functional as F

from trainables.memory import FIFOQueue, MovingAverageBank, WindowMeanBank


def test_bank_first_sight_initialises_then_mixes():
    bank = MovingAverageBank(5, 3, alpha=0.5)
    idx = torch.tensor([1, 3])
    x1 = torch.tensor([[3.0, 0, 0], [0, 2.0, 0]])
    out = bank.update(idx, x1)
    assert torch.allclose(out, F.normalize(x1, dim=1))
    x2 = torch.tensor([[0, 4.0, 0], [0, 0, 1.0]])
    out2 = bank.update(idx, x2)
    expected = F.normalize(0.5 * F.normalize(x2, dim=1) + 0.5 * F.normalize(x1, dim=1), dim=1)
    assert torch.allclose(out2, expected)
    assert torch.equal(bank.seen, torch.tensor([False, True, False, True, False]))
    assert torch.all(bank.features[[0, 2, 4]] == 0)


def test_bank_state_round_trip():
    bank = MovingAverageBank(4, 2, alpha=0.3)
    bank.update(torch.tensor([0, 2]), torch.randn(2, 2))
    other = MovingAverageBank(4, 2, alpha=0.3)
    other.load_state_dict({k: v.clone() for k, v in bank.state_dict().items()})
    assert torch.equal(other.features, bank.features) and torch.equal(other.seen, bank.seen)


def test_queue_is_fifo_and_wraps():
    q = FIFOQueue(5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(q.bank.norm(dim=1), torch.ones(5))
    rows = torch.arange(14, dtype=torch.float32).view(7, 2)
    q.push(rows[:3])
    q.push(rows[3:7])  # 7 rows into 5 slots: the oldest two are overwritten
    stored = {tuple(r) for r in q.bank.tolist()}
    assert stored == {tuple(r) for r in rows[2:7].tolist()}
    assert int(q.pointer) == 2
    q.push(rows[:1])  # replaces the oldest (rows[2], at slot 2)
    assert tuple(q.bank[2].tolist()) == tuple(rows[0].tolist())


def test_queue_nearest_matches_brute_force_and_returns_stored_rows():
    g = torch.Generator().manual_seed(1)
    q = FIFOQueue(64, 8, generator=g)
    q.push(torch.randn(64, 8, generator=g))
    batch = torch.randn(10, 8, generator=g)
    for metric in ("l2", "cosine"):
        found = q.nearest(batch, metric)
        if metric == "l2":
            ref = q.bank[torch.cdist(batch, q.bank).argmin(dim=1)]
        else:
            ref = q.bank[(F.normalize(batch, dim=1) @ F.normalize(q.bank, dim=1).T).argmax(dim=1)]
        assert torch.equal(found, ref)
    q.push(batch)  # once pushed, a query finds itself: why CCES looks up before it pushes
    assert torch.equal(q.nearest(batch, "l2"), batch)
    assert torch.equal(q.nearest(batch, "cosine"), batch)


def test_queue_state_round_trip():
    q = FIFOQueue(6, 3, generator=torch.Generator().manual_seed(2))
    q.push(torch.ones(4, 3))
    r = FIFOQueue(6, 3, generator=torch.Generator().manual_seed(9))
    r.load_state_dict({k: v.clone() for k, v in q.state_dict().items()})
    assert torch.equal(r.bank, q.bank) and int(r.pointer) == int(q.pointer) == 4


def test_window_mean_bank_averages_the_last_entries_only():
    bank = WindowMeanBank(4, 2, window=3)
    idx = torch.tensor([0, 2])
    rows = [torch.tensor([[float(t), 0.0], [0.0, 10.0 * t]]) for t in range(1, 6)]
    bank.update(idx, rows[0])
    assert torch.allclose(bank.features[0], torch.tensor([1.0, 0.0]))  # one entry: itself
    for r in rows[1:]:
        bank.update(idx, r)
    # entries 3, 4, 5 remain: plain mean, not re-normalised
    assert torch.allclose(bank.features[0], torch.tensor([4.0, 0.0]))
    assert torch.allclose(bank.features[2], torch.tensor([0.0, 40.0]))
    assert torch.all(bank.features[[1, 3]] == 0) and bank.count.tolist() == [3, 0, 3, 0]


def test_window_mean_bank_state_round_trip():
    bank = WindowMeanBank(5, 2, window=2)
    bank.update(torch.tensor([1, 4]), torch.randn(2, 2))
    other = WindowMeanBank(5, 2, window=2)
    other.load_state_dict({k: v.clone() for k, v in bank.state_dict().items()})
    bank.update(torch.tensor([1]), torch.ones(1, 2))
    other.update(torch.tensor([1]), torch.ones(1, 2))
    assert torch.equal(other.features, bank.features)
