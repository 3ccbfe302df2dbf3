"""EpochRecords: one epoch's observations, fed to the state at epoch end."""
import numpy as np
import pytest
import torch

from mmdiff.core import (DifficultyState, EpochRecords, last_rows, merge_parts,
                         select_rows)


def _rows(seed: int, n: int, num_classes: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, num_classes, generator=gen) * 3, 1)
    labels = torch.randint(0, num_classes, (n, ), generator=gen)
    return probs, labels


@pytest.mark.parametrize('storage', ['dense', 'topk'])
def test_records_feed_the_state_like_direct_observations(storage: str) -> None:
    state = DifficultyState(12, 12, storage=storage, topk=3)
    direct = DifficultyState(12, 12, storage=storage, topk=3)
    records = EpochRecords(None if storage == 'dense' else 3)
    for epoch in range(3):
        for step in range(3):  # unsorted, repeated ids across steps
            ids = torch.tensor([7, 2, 9, 2, 0])[:5 - step] + step
            probs, labels = _rows(10 * epoch + step, ids.numel(), 12)
            labels = ids % 12  # one label per instance
            records.add(ids, labels, probs)
            direct.observe(ids, probs, labels)
        assert len(records) == 5 + 4 + 3
        part = records.take()
        assert len(records) == 0
        assert state.end_epoch(part) == direct.end_epoch()
        np.testing.assert_allclose(
            state.difficulty(), direct.difficulty(), rtol=1e-6)


def test_invalid_rows_are_counted_and_dropped() -> None:
    records = EpochRecords(topk=2)
    probs, labels = _rows(0, 4, 5)
    probs[1, 3] = float('nan')
    records.add(
        torch.arange(4), labels, probs, torch.tensor([True, True, True,
                                                      False]))
    part = records.take()
    # Only the NaN row counts as invalid; the row the caller marked (an
    # object its image no longer has) is dropped without being counted.
    assert part['num'] == 4 and part['invalid'] == 1
    assert part['ids'].tolist() == [0, 2]
    assert set(part) >= {
        'true_prob', 'top_idx', 'top_prob', 'rest', 'prior_dl', 'prior_du'
    }
    state = DifficultyState(4, 5, storage='topk', topk=2)
    assert state.end_epoch(select_rows(part, np.array([False, True]))) == 1
    assert state.difficulty()[2] != 1 and state.difficulty()[0] == 1


def test_an_empty_epoch() -> None:
    records = EpochRecords()
    part = records.take()
    assert part == dict(num=0, invalid=0)
    state = DifficultyState(3, 4)
    assert state.end_epoch(part) == 0


def test_merge_puts_the_ranks_records_in_step_order() -> None:
    """The last prediction of an epoch is the one of the latest step.

    Rank 1 sees object 4 at step 0, rank 0 at step 3: rank 0's wins,
    although rank 1 comes later in rank order. Object 2 is seen by both
    at step 1: the same weights, so rank order decides (rank 1).
    """
    num_classes = 5
    probs = {
        name: row
        for name, row in zip(('r0_s1', 'r0_s3', 'r1_s0', 'r1_s1'),
                             _rows(3, 4, num_classes)[0])
    }
    labels = torch.tensor([1])
    rank0, rank1 = EpochRecords(), EpochRecords()
    rank0.add(torch.tensor([2]), labels, probs['r0_s1'][None], step=1)
    rank0.add(torch.tensor([4]), labels, probs['r0_s3'][None], step=3)
    rank1.add(torch.tensor([4]), labels, probs['r1_s0'][None], step=0)
    rank1.add(torch.tensor([2]), labels, probs['r1_s1'][None], step=1)
    merged = merge_parts([rank0.take(), rank1.take(), EpochRecords().take()])
    assert merged['num'] == 4 and merged['invalid'] == 0
    assert merged['step'].tolist() == [0, 1, 1, 3]
    assert merged['ids'].tolist() == [4, 2, 2, 4]

    state = DifficultyState(6, num_classes)
    state.end_epoch(merged)
    expected = DifficultyState(6, num_classes)
    expected.observe([2, 4], torch.stack([probs['r1_s1'], probs['r0_s3']]),
                     [1, 1])
    expected.end_epoch()
    np.testing.assert_array_equal(state.difficulty(), expected.difficulty())


def test_merge_of_empty_parts() -> None:
    assert merge_parts([EpochRecords().take()] * 2) == dict(num=0, invalid=0)


def test_records_for_another_storage_are_refused() -> None:
    part = EpochRecords(topk=None)
    part.add(torch.tensor([0]), torch.tensor([1]), _rows(1, 1, 5)[0])
    state = DifficultyState(3, 5, storage='topk', topk=2)
    with pytest.raises(ValueError, match="another storage.*'topk'"):
        state.end_epoch(part.take())


def test_last_rows_match_loops() -> None:
    """The last occurrence of every id, by the most obvious loop."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        ids = rng.integers(0, 6, size=int(rng.integers(0, 12)))
        uniq, rows = last_rows(ids)
        rows = np.arange(ids.size) if rows is None else rows
        last = {}
        for row, i in enumerate(ids.tolist()):
            last[i] = row
        assert uniq.tolist() == sorted(last)
        assert rows.tolist() == [last[i] for i in sorted(last)]


def test_padding_rows_are_neither_kept_nor_counted() -> None:
    """A capture's padding (observed=False): not in num, not invalid (even
    with NaN probabilities), never stored, never matched by a reset."""
    records = EpochRecords(topk=2)
    probs, labels = _rows(3, 5, 6)
    probs[4, 0] = float('nan')  # padding with NaN: not an invalid row
    probs[1, 1] = float('nan')  # an observation with NaN: invalid
    observed = torch.tensor([True, True, True, False, False])
    valid = torch.tensor([True, True, False, True, True])
    records.add(
        torch.tensor([0, 1, 2, 0, 3]), labels, probs, valid, observed=observed)
    records.drop(torch.tensor([3]))  # id 3 is only a padding row's
    part = records.take()
    # rows 0-2 are observations (row 2 marked by the caller: counted, not
    # kept); row 1 is NaN: invalid; rows 3-4 are padding
    assert part['num'] == 3 and part['invalid'] == 1
    assert part['ids'].tolist() == [0]
    state = DifficultyState(4, 6, storage='topk', topk=2)
    assert state.end_epoch(part) == 1


@pytest.mark.parametrize('made,used', [('dense', 'dense_fp16'),
                                       ('dense_fp16', 'dense'),
                                       ('topk', 'topk')])
def test_records_of_another_storage_are_refused(made: str, used: str) -> None:
    """Dense rows read as float16 codes (or codes as probabilities, or
    top-3 records as top-2 ones) would give a wrong D without an error."""
    records = EpochRecords(3, storage=made)
    probs, labels = _rows(4, 3, 6)
    records.add(torch.arange(3), labels, probs)
    part = records.take()
    state = DifficultyState(3, 6, storage=used, topk=2)
    with pytest.raises(ValueError, match='made for another storage'):
        state.end_epoch(part)
    # nothing changed: the caller still holds the records
    assert state.epoch == 0 and state.difficulty().tolist() == [1.0] * 3


def test_unknown_storage_is_named() -> None:
    with pytest.raises(ValueError, match='storage'):
        EpochRecords(storage='auto')
