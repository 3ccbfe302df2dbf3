"""Tests of DifficultyState (Yu et al., CVPR 2022; docs/design.md, 4, 5)."""
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.core import (DifficultyState, EpochRecords, compress, decompress,
                         merge_parts, psi_split_from_prior)
from mmdiff.core import state as state_module

STORAGES = [('dense', 8), ('dense_fp16', 8), ('topk', 2)]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def with_true_prob(t: float,
                   num_classes: int = 5,
                   true: int = 0,
                   flat: bool = False) -> np.ndarray:
    """A row with probability t on class ``true``, the rest in a fixed
    decreasing (or flat) shape over the other classes."""
    shape = np.arange(num_classes - 1, 0, -1, dtype=np.float64)
    if flat:
        shape = np.ones(num_classes - 1)
    row = np.insert((1 - t) * shape / shape.sum(), true, t)
    return row[None]


def peaked(rng: np.random.Generator, n: int, num_classes: int,
           labels: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Softmax rows peaked on the label and a few confusers."""
    logits = rng.normal(size=(n, num_classes)) * 0.5
    logits[np.arange(n), labels] += margin
    for shift in (1, 2, 3):
        logits[np.arange(n), (labels + shift * 7) % num_classes] += \
            margin - 1.5 - shift
    return softmax(logits).astype(np.float32)


def assert_same_state(a: DifficultyState, b: DifficultyState) -> None:
    """Bit-identical snapshots (NaN markers included)."""
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for name, value in sd_a.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(
                value, sd_b[name], rtol=0, atol=0, equal_nan=True, msg=name)
        else:
            assert value == sd_b[name], name


def run_epochs(state: DifficultyState, probs_per_epoch: list,
               labels: np.ndarray) -> list:
    out = []
    for probs in probs_per_epoch:
        state.observe(np.arange(len(labels)), probs, labels)
        state.end_epoch()
        out.append(state.difficulty())
    return out


# ---------------------------------------------------------------------------
# hand-computed
@pytest.mark.parametrize('storage,topk', STORAGES)
def test_hand_computed_two_epochs(storage: str, topk: int) -> None:
    # topk = 2 stores every class of K = 3, up to the rounding of the
    # stored probabilities (relative error <= 2 ** -11).
    rtol = 1e-5 if storage == 'dense' else 5e-4
    # Epoch 1, from p_0 = (1/3, 1/3, 1/3), true class 0 for both:
    # instance 0 -> (0.8, 0.1, 0.1): dl = 0.970406 (test_psi), du = 0,
    #   D = 1 / 1.970406 = 0.507509.
    # instance 1 -> (0.2, 0.5, 0.3):
    #   psi_0 = (0.2 - 1/3) ln 0.6 = 0.0681101  true class falls: du
    #   psi_1 = (0.5 - 1/3) ln 1.5 = 0.0675775  wrong class rises: du
    #   psi_2 = (0.3 - 1/3) ln 0.9 = 0.0035120  wrong class falls: dl
    #   D = 1.1356876 / 1.0035120 = 1.131713.
    # Epoch 2, only instance 0 -> (0.9, 0.05, 0.05):
    #   dl += 0.1 ln 1.125 + 2 * 0.05 ln 2 = 0.0117783 + 0.0693147,
    #   D = 1 / (1 + 1.051499) = 0.487448; instance 1 keeps its D.
    state = DifficultyState(2, 3, storage=storage, topk=topk)
    assert state.storage == storage
    state.observe([0, 1], [[.8, .1, .1], [.2, .5, .3]], [0, 0])
    assert state.end_epoch() == 2
    np.testing.assert_allclose(
        state.difficulty(), [0.507509, 1.131713], rtol=rtol)
    state.observe([0], [[.9, .05, .05]], [0])
    assert state.end_epoch() == 1
    d = state.difficulty()
    assert isinstance(d, np.ndarray) and d.dtype == np.float64
    np.testing.assert_allclose(d, [0.487448, 1.131713], rtol=rtol)
    assert state.epoch == 2
    np.testing.assert_allclose(
        state.sum_du.numpy(), [0, 0.1356876], rtol=rtol, atol=1e-7)


def test_c_scales_sensitivity() -> None:
    # Instance 1 above with c = 2: (2 + 0.1356876) / (2 + 0.0035120)
    # = 1.065972, closer to 1 than with c = 1 (1.131713).
    state = DifficultyState(2, 3, c=2.0)
    state.observe([0, 1], [[.8, .1, .1], [.2, .5, .3]], [0, 0])
    state.end_epoch()
    np.testing.assert_allclose(state.difficulty()[1], 1.065972, rtol=1e-6)


def test_initial_difficulty_is_one() -> None:
    state = DifficultyState(4, 3)
    np.testing.assert_array_equal(state.difficulty(), np.ones(4))
    assert state.end_epoch() == 0 and state.epoch == 1


# ---------------------------------------------------------------------------
# behaviour
@pytest.mark.parametrize('storage,topk', STORAGES)
def test_forgotten_hard_learned_easy(storage: str, topk: int) -> None:
    # Learned: the true class rises every epoch. Forgotten: first seen at
    # the uniform prior, then its true class falls every epoch (so its
    # wrong classes all rise): only unlearning terms.
    learned = [0.3, 0.45, 0.6, 0.75, 0.85, 0.9]
    forgotten = [0.2, 0.15, 0.1, 0.07, 0.05, 0.03]
    state = DifficultyState(2, 5, storage=storage, topk=topk)
    for t_learn, t_forget in zip(learned, forgotten):
        probs = np.concatenate([
            with_true_prob(t_learn, true=1),
            with_true_prob(t_forget, true=3, flat=True)
        ])
        state.observe([0, 1], probs, [1, 3])
        state.end_epoch()
    d = state.difficulty()
    assert d[0] < 1 < d[1]


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_unchanged_prediction_adds_nothing(storage: str, topk: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 30, 40)
    probs = peaked(rng, 40, 30, labels, np.full(40, 4.0))
    state = DifficultyState(40, 30, storage=storage, topk=topk)
    state.observe(np.arange(40), probs, labels)
    state.end_epoch()
    before = (state.sum_dl.clone(), state.sum_du.clone())
    for _ in range(2):
        state.observe(np.arange(40), probs, labels)
        state.end_epoch()
    assert torch.equal(state.sum_dl, before[0])
    assert torch.equal(state.sum_du, before[1])


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_last_observation_wins(storage: str, topk: int) -> None:
    rows = [with_true_prob(t) for t in (0.1, 0.5, 0.9, 0.3)]
    # Within a call: id 0 appears twice, the second row wins; across calls
    # the later call wins.
    state = DifficultyState(3, 5, storage=storage, topk=topk)
    state.observe([0, 1, 0], np.concatenate(rows[:3]), [0, 0, 0])
    state.observe([1], rows[3], [0])
    state.end_epoch()
    ref = DifficultyState(3, 5, storage=storage, topk=topk)
    ref.observe([0, 1], np.concatenate([rows[2], rows[3]]), [0, 0])
    ref.end_epoch()
    np.testing.assert_array_equal(state.difficulty(), ref.difficulty())
    assert state.difficulty()[2] == 1.0


@pytest.mark.parametrize('storage,topk', [('dense', 8), ('topk', 2)])
def test_observations_are_copied(storage: str, topk: int) -> None:
    """A caller may reuse its arrays before the epoch ends."""
    ids, labels = np.array([0, 1]), np.array([0, 0])
    rows = np.concatenate([with_true_prob(t) for t in (0.9, 0.2)])
    state = DifficultyState(3, 5, storage=storage, topk=topk)
    ref = DifficultyState(3, 5, storage=storage, topk=topk)
    state.observe(ids, rows, labels)
    ref.observe(ids.copy(), rows.copy(), labels.copy())
    ids[:], labels[:], rows[...] = 2, 1, 0.2
    state.end_epoch()
    ref.end_epoch()
    np.testing.assert_array_equal(state.difficulty(), ref.difficulty())
    assert state.difficulty()[2] == 1.0


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_unseen_instances_keep_state(storage: str, topk: int) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 20, 10)
    state = DifficultyState(10, 20, storage=storage, topk=topk)
    ref = DifficultyState(10, 20, storage=storage, topk=topk)
    epochs = [peaked(rng, 10, 20, labels, np.full(10, m)) for m in (2, 4, 1)]
    state.observe(np.arange(10), epochs[0], labels)
    ref.observe(np.arange(10), epochs[0], labels)
    state.end_epoch()
    ref.end_epoch()
    state.observe(np.arange(5), epochs[1][:5], labels[:5])
    assert state.num_pending == 5
    assert state.end_epoch() == 5
    state.observe(np.arange(10), epochs[2], labels)
    state.end_epoch()
    # ref: instances 5..9 skip epoch 2 entirely.
    ref.observe(np.arange(5), epochs[1][:5], labels[:5])
    ref.end_epoch()
    ref.observe(np.arange(10), epochs[2], labels)
    ref.end_epoch()
    np.testing.assert_array_equal(state.difficulty(), ref.difficulty())
    other = DifficultyState(10, 20, storage=storage, topk=topk)
    other.observe(np.arange(10), epochs[0], labels)
    other.end_epoch()
    other.observe(np.arange(10), epochs[2], labels)
    other.end_epoch()
    np.testing.assert_allclose(
        state.difficulty()[5:], other.difficulty()[5:], rtol=1e-6)


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_reset(storage: str, topk: int) -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 20, 6)
    first = peaked(rng, 6, 20, labels, np.full(6, 3.0))
    second = peaked(rng, 6, 20, labels, np.full(6, 1.0))
    state = DifficultyState(6, 20, storage=storage, topk=topk)
    state.observe(np.arange(6), first, labels)
    state.end_epoch()
    state.observe([0, 1], second[:2], labels[:2])  # dropped by reset
    state.reset([1, 2])
    assert state.num_pending == 1
    d = state.difficulty()
    assert d[1] == 1.0 and d[2] == 1.0 and d[0] != 1.0
    state.observe(np.arange(6), second, labels)
    state.end_epoch()
    fresh = DifficultyState(6, 20, storage=storage, topk=topk)
    fresh.observe(np.arange(6), second, labels)
    fresh.end_epoch()
    # Reset instances start over from the uniform prior.
    np.testing.assert_allclose(
        state.difficulty()[1:3], fresh.difficulty()[1:3], rtol=1e-6)


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_torch_and_numpy_inputs_agree(storage: str, topk: int) -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 20, 8)
    epochs = [peaked(rng, 8, 20, labels, np.full(8, m)) for m in (3, 1)]
    a = DifficultyState(8, 20, storage=storage, topk=topk)
    b = DifficultyState(8, 20, storage=storage, topk=topk)
    run_epochs(a, epochs, labels)
    for probs in epochs:
        b.observe(
            torch.arange(8),
            torch.from_numpy(probs).double(),
            torch.from_numpy(labels).int())
        b.end_epoch()
    np.testing.assert_allclose(a.difficulty(), b.difficulty(), rtol=1e-6)


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_label_change_matches_dense(storage: str, topk: int) -> None:
    # Callers should reset() a changed instance, but a changed label still
    # gives the PSI split between the stored and new vectors.
    num_classes = 6
    state = DifficultyState(
        1, num_classes, storage=storage, topk=num_classes - 1)
    state.observe([0], with_true_prob(0.6, num_classes, 1), [1])
    state.end_epoch()
    state.observe([0], with_true_prob(0.6, num_classes, 2), [2])
    state.end_epoch()
    ref = DifficultyState(1, num_classes, storage='dense')
    ref.observe([0], with_true_prob(0.6, num_classes, 1), [1])
    ref.end_epoch()
    ref.observe([0], with_true_prob(0.6, num_classes, 2), [2])
    ref.end_epoch()
    np.testing.assert_allclose(state.difficulty(), ref.difficulty(), rtol=5e-3)


def test_small_chunks_give_identical_results(monkeypatch) -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 40, 50)
    epochs = [
        peaked(rng, 50, 40, labels, rng.uniform(0, 5, 50)) for _ in range(3)
    ]
    results = []
    for chunk in (2**15, 7):
        monkeypatch.setattr(state_module, 'CPU_CHUNK', chunk)
        for storage in ('dense', 'topk'):
            state = DifficultyState(50, 40, storage=storage, topk=4)
            run_epochs(state, epochs, labels)
            # a partial epoch exercises the gather path
            state.observe(np.arange(0, 50, 3), epochs[0][::3], labels[::3])
            state.end_epoch()
            results.append(state.difficulty())
    np.testing.assert_array_equal(results[0], results[2])
    # Reductions over (k + 1, chunk) may associate differently per shape.
    np.testing.assert_allclose(results[1], results[3], rtol=1e-6)


def test_end_epoch_restores_thread_count() -> None:
    threads = torch.get_num_threads()
    try:
        # More than one, whatever the runner (xdist workers run with one):
        # end_epoch drops to one thread and must restore this.
        torch.set_num_threads(3)
        state = DifficultyState(3, 4)
        state.observe([0], [[0.25] * 4], [0])
        state.end_epoch()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------
# sparse storage
def test_auto_storage() -> None:
    assert DifficultyState(100, 10).storage == 'dense'
    big = DifficultyState(14_000, 1204)  # N * K just above 2 ** 24
    assert big.storage == 'topk' and big.topk == 8
    assert big.state_dict()['prev_idx'].dtype == torch.int16
    assert DifficultyState(3, 4, storage='topk', topk=50).topk == 3


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_topk_close_to_dense_on_peaked_predictions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, num_classes = 300, 200
    labels = rng.integers(0, num_classes, n)
    # Margin 10 over noisy logits (fresh noise on every class each epoch);
    # a steep trend drives some instances to margins near 5 (heavy tails).
    trend = rng.normal(0, 1.5, n)
    epochs = [
        peaked(rng, n, num_classes, labels, 10 + trend * t / 2)
        for t in range(4)
    ]
    dense = DifficultyState(n, num_classes, storage='dense')
    sparse = DifficultyState(n, num_classes, storage='topk', topk=8)
    for d_dense, d_sparse in zip(
            run_epochs(dense, epochs, labels),
            run_epochs(sparse, epochs, labels)):
        rel = np.abs(d_sparse - d_dense) / d_dense
        assert np.median(rel) < 0.01
        assert rel.max() < 0.25


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_dense_fp16_close_to_dense_at_half_the_memory(seed: int) -> None:
    """Diffuse rows (most mass in a long tail that moves each epoch): the
    case top-k cannot see. The float16 codes keep every class."""
    rng = np.random.default_rng(seed)
    n, num_classes = 200, 300
    labels = rng.integers(0, num_classes, n)
    epochs = [
        softmax(
            rng.normal(size=(n, num_classes)) * 0.5 +
            np.eye(num_classes)[labels] * (1 + t)) for t in range(4)
    ]
    dense = DifficultyState(n, num_classes, storage='dense')
    half = DifficultyState(n, num_classes, storage='dense_fp16')
    assert half.nbytes - n * (2 * 4 + 2) == (dense.nbytes - n *
                                             (2 * 4 + 2)) // 2
    for d_dense, d_half in zip(
            run_epochs(dense, epochs, labels),
            run_epochs(half, epochs, labels)):
        rel = np.abs(d_half - d_dense) / d_dense
        assert np.median(rel) < 1e-3 and rel.max() < 1e-2


def test_topk_with_all_classes_matches_dense() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 12, 30)
    epochs = [softmax(rng.normal(size=(30, 12)) * s) for s in (1, 2, 3)]
    dense = DifficultyState(30, 12, storage='dense')
    sparse = DifficultyState(30, 12, storage='topk', topk=11)
    for d_dense, d_sparse in zip(
            run_epochs(dense, epochs, labels),
            run_epochs(sparse, epochs, labels)):
        np.testing.assert_allclose(d_sparse, d_dense, rtol=5e-3)


@pytest.mark.parametrize('storage', ['dense', 'dense_fp16', 'topk'])
def test_gathered_records_match_observe(storage: str) -> None:
    """Records taken in another process (float32 torch rows, as a capture
    makes them) and merged give the state observe() gives."""
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 30, 20)
    epochs = [peaked(rng, 20, 30, labels, np.full(20, m)) for m in (4, 2)]
    a = DifficultyState(20, 30, storage=storage, topk=3)
    b = DifficultyState(20, 30, storage=storage, topk=3)
    for probs in epochs:
        ids = np.concatenate([np.arange(20), [4]])  # id 4 twice: last wins
        rows = torch.from_numpy(probs[ids].astype(np.float32))
        a.observe(ids, rows, labels[ids])
        remote = EpochRecords(3, storage=storage)
        remote.add(torch.from_numpy(ids), torch.from_numpy(labels[ids]), rows)
        a.end_epoch()
        b.end_epoch(merge_parts([remote.take(), EpochRecords().take()]))
    assert_same_state(a, b)
    np.testing.assert_array_equal(a.difficulty(), b.difficulty())


def test_first_term_is_exact_in_topk_storage() -> None:
    # The first term comes from the dense prediction, so after one epoch
    # topk matches dense up to the float16 storage of that term.
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 300, 50)
    logits = rng.normal(size=(50, 300)) * 2  # spread-out unstored classes
    logits[np.arange(50), labels] += 8
    probs = softmax(logits).astype(np.float32)
    dense = DifficultyState(50, 300, storage='dense')
    sparse = DifficultyState(50, 300, storage='topk', topk=4)
    for state in (dense, sparse):
        state.observe(np.arange(50), probs, labels)
        state.end_epoch()
    np.testing.assert_allclose(
        sparse.difficulty(), dense.difficulty(), rtol=1e-3)
    # what a record alone gives: the Jensen gap of the uniform stand-in
    record = decompress(labels, *compress(probs, labels, 4), 300)
    from_record = psi_split_from_prior(record, labels)
    exact = psi_split_from_prior(probs, labels)
    rel = np.abs(from_record[0] / exact[0] - 1)
    assert np.median(rel) > 0.05


def test_end_epoch_refuses_records_of_unknown_instances() -> None:
    state = DifficultyState(3, 5, storage='topk', topk=2)
    records = EpochRecords(topk=2)
    records.add(torch.tensor([3]), torch.tensor([0]), torch.full((1, 5), .2))
    with pytest.raises(ValueError, match='ids'):
        state.end_epoch(records.take())


def test_lvis_scale_memory() -> None:
    state = DifficultyState(1_270_141, 1204)
    assert state.storage == 'topk'
    assert state.nbytes <= 128 * 10**6
    # per instance: (label, true, 8 idx, 8 probs, rest) of the stored
    # prediction and float32 sums; no per-instance epoch buffer
    assert state.nbytes == 1_270_141 * (2 + 4 + 2 * 8 + 2 * 8 + 4 + 2 * 4)


def test_pending_observations_are_released_at_epoch_end() -> None:
    state = DifficultyState(1000, 300, storage='topk', topk=8)
    stored = state.nbytes
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 300, 400)
    state.observe(
        np.arange(400), peaked(rng, 400, 300, labels, np.full(400, 3.0)),
        labels)
    # id, label, step (8 each), valid, finite (1 each), true, 8 idx,
    # 8 codes, rest, two first terms
    assert state.nbytes - stored == 400 * (8 * 3 + 2 + 4 + 16 + 16 + 4 + 8)
    state.end_epoch()
    assert state.nbytes == stored


# ---------------------------------------------------------------------------
# checkpointing
@pytest.mark.parametrize('storage,topk', STORAGES)
def test_state_dict_round_trip(storage: str, topk: int) -> None:
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 20, 12)
    epochs = [
        peaked(rng, 12, 20, labels, rng.uniform(0, 5, 12)) for _ in range(3)
    ]
    state = DifficultyState(12, 20, c=0.5, storage=storage, topk=topk)
    run_epochs(state, epochs[:2], labels)
    state.observe(np.arange(6), epochs[2][:6], labels[:6])  # pending
    sd = state.state_dict()
    for value in sd.values():
        assert isinstance(value, (int, float, str, torch.Tensor))
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    loaded_sd = torch.load(buffer, weights_only=True)
    other = DifficultyState(12, 20, storage='auto', topk=5)
    with pytest.warns(UserWarning, match='c=0.5 from the checkpoint'):
        other.load_state_dict(loaded_sd)
    assert (other.c, other.storage, other.topk, other.epoch) == (0.5, storage,
                                                                 topk, 2)
    assert_same_state(other, state)
    np.testing.assert_array_equal(other.difficulty(), state.difficulty())
    state.end_epoch()
    other.end_epoch()
    np.testing.assert_array_equal(other.difficulty(), state.difficulty())
    # the snapshot is a copy, not a view of the live state
    assert not torch.equal(sd['sum_dl'], state.sum_dl)


def test_load_state_dict_other_dataset_raises() -> None:
    sd = DifficultyState(12, 20).state_dict()
    with pytest.raises(ValueError, match='another dataset.*12.*20.*13.*20'):
        DifficultyState(13, 20).load_state_dict(sd)
    with pytest.raises(ValueError, match='another dataset.*12.*20.*12.*21'):
        DifficultyState(12, 21).load_state_dict(sd)


def test_load_state_dict_malformed_raises() -> None:
    sd = DifficultyState(12, 20).state_dict()
    sd['sum_dl'] = sd['sum_dl'][:5]
    with pytest.raises(ValueError, match='sum_dl'):
        DifficultyState(12, 20).load_state_dict(sd)
    with pytest.raises(ValueError, match='missing'):
        DifficultyState(12, 20).load_state_dict({'sum_dl': 1})


# ---------------------------------------------------------------------------
# validation
def test_bad_constructor_arguments_raise() -> None:
    for c in (0, -1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='c must'):
            DifficultyState(3, 4, c=c)
    with pytest.raises(ValueError, match='storage'):
        DifficultyState(3, 4, storage='sparse')
    with pytest.raises(ValueError, match='topk'):
        DifficultyState(3, 4, topk=-1)
    with pytest.raises(ValueError, match='num_instances'):
        DifficultyState(0, 4)
    with pytest.raises(ValueError, match='num_classes'):
        DifficultyState(3, 1)


@pytest.mark.parametrize('storage,topk', STORAGES)
def test_bad_observations_raise(storage: str, topk: int) -> None:
    state = DifficultyState(3, 4, storage=storage, topk=topk)
    good = np.full((2, 4), 0.25)
    with pytest.raises(ValueError, match='ids'):
        state.observe([0, 3], good, [0, 0])
    with pytest.raises(ValueError, match='ids'):
        state.observe([-1, 0], good, [0, 0])
    with pytest.raises(ValueError, match='ids'):
        state.observe([0.0, 1.0], good, [0, 0])
    with pytest.raises(ValueError, match='labels'):
        state.observe([0, 1], good, [0, 4])
    with pytest.raises(ValueError, match='labels'):
        state.observe([0, 1], good, [0])
    for bad in (np.nan, np.inf):
        broken = good.copy()
        broken[0, 0] = bad
        with pytest.raises(ValueError, match='probs contains NaN or inf'):
            state.observe([0, 1], broken, [0, 0])
    with pytest.raises(ValueError, match='probs looks like logits'):
        state.observe([0, 1], np.log(good), [0, 0])
    with pytest.raises(ValueError, match='probs'):
        state.observe([0, 1], np.full((2, 5), 0.2), [0, 0])
    with pytest.raises(ValueError, match='ids'):
        state.reset([5])
    assert state.num_pending == 0


# ---------------------------------------------------------------------------
# devices
@pytest.mark.cuda
@pytest.mark.parametrize('storage,topk', STORAGES)
def test_cuda_matches_cpu(storage: str, topk: int) -> None:
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 50, 64)
    epochs = [
        peaked(rng, 64, 50, labels, rng.uniform(0, 5, 64)) for _ in range(3)
    ]
    cpu = DifficultyState(64, 50, storage=storage, topk=topk)
    gpu = DifficultyState(64, 50, storage=storage, topk=topk, device='cuda')
    run_epochs(cpu, epochs, labels)
    for probs in epochs:  # mixed inputs: numpy ids, CUDA probs
        gpu.observe(np.arange(64), torch.from_numpy(probs).cuda(), labels)
        gpu.end_epoch()
    assert gpu.sum_dl.is_cuda
    np.testing.assert_allclose(gpu.difficulty(), cpu.difficulty(), rtol=1e-5)
    restored = DifficultyState(64, 50, storage=storage, topk=topk)
    restored.load_state_dict(gpu.state_dict())
    np.testing.assert_array_equal(restored.difficulty(), gpu.difficulty())


def test_first_term_skip_is_kept_in_snapshots() -> None:
    state = DifficultyState(3, 4, first_term='skip')
    state.observe([0, 1], [[.7, .1, .1, .1], [.25] * 4], [0, 0])
    assert state.end_epoch() == 2
    # Seen once: stored, no term; D = 1 like an instance never seen.
    np.testing.assert_array_equal(state.difficulty(), [1, 1, 1])
    assert state.observed.tolist() == [True, True, False]
    other = DifficultyState(3, 4)
    with pytest.warns(UserWarning, match="first_term='skip'"):
        other.load_state_dict(state.state_dict())
    assert other.first_term == 'skip'
    with pytest.raises(ValueError, match='first_term'):
        DifficultyState(3, 4, first_term='none')
