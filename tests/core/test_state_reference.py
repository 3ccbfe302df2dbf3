"""DifficultyState against a brute-force reference written in plain loops.

The reference follows the paper's formulas (Yu et al., CVPR 2022; see
docs/method.md) one instance and one class at a time, with Python floats:

    delta_j = q_j - p_j,  psi_j = delta_j * ln(q_j / p_j)
    dl = [delta_y > 0] psi_y + sum_{j != y} [delta_j < 0] psi_j
    du = [delta_y < 0] psi_y + sum_{j != y} [delta_j > 0] psi_j
    D  = (c + sum du) / (c + sum dl)

with one term per instance per epoch, between its last prediction of the
epoch and its last prediction of the previous epoch it was seen in
(``p_0 = 1 / K`` on first sight), and ``reset`` forgetting an instance.
For top-k storage the stored previous prediction is what the documented
codec keeps (true class, the k likeliest others, the rest spread evenly);
the first term is exact. For dense_fp16 storage every probability, the new
ones included, is what its float16 code of ``p * 2 ** 15`` holds.

Sequences are adversarial: unique unsorted ids, repeated ids within and
across calls, instances skipped for epochs, resets between calls, empty
calls and several calls per epoch (one per rank).
"""
import math
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.core import DifficultyState, EpochRecords, merge_parts

EPS = 1e-12
Row = Tuple[List[float], int]  # (probabilities, label)


def reference_split(prev: List[float], cur: List[float],
                    label: int) -> Tuple[float, float]:
    """(dl, du) between two probability vectors, class by class."""
    dl = du = 0.0
    for j in range(len(cur)):
        delta = cur[j] - prev[j]
        psi = delta * (
            math.log(max(cur[j], EPS)) - math.log(max(prev[j], EPS)))
        if j == label:
            if delta > 0:
                dl += psi
            elif delta < 0:
                du += psi
        else:
            if delta < 0:
                dl += psi
            elif delta > 0:
                du += psi
    return dl, du


def half_code(p: float) -> float:
    """The probability a float16 code of ``p * 2 ** 15`` stands for."""
    return float(np.float16(p * 2.0**15)) / 2.0**15


def reference_codec(probs: List[float], label: int, k: int) -> List[float]:
    """The dense vector a top-k record stands for (true, top k, even rest)."""
    num_classes = len(probs)
    others = [j for j in range(num_classes) if j != label]
    others.sort(key=lambda j: -probs[j])
    kept = others[:k]
    rest = sum(probs[j] for j in others[k:])
    free = num_classes - 1 - k
    out = [rest / free if free else 0.0] * num_classes
    out[label] = probs[label]
    for j in kept:
        # the state stores float16 codes of p * 2 ** 15
        out[j] = half_code(probs[j])
    return out


class ReferenceState:
    """DifficultyState in loops: dict-of-lists, one instance at a time."""

    def __init__(self,
                 num_instances: int,
                 num_classes: int,
                 c: float,
                 storage: str,
                 topk: int,
                 first_term: str = 'prior') -> None:
        self.n, self.k_classes, self.c = num_instances, num_classes, c
        self.storage, self.topk = storage, topk
        self.first_term = first_term
        self.prev: Dict[int, List[float]] = {}
        self.buffer: Dict[int, Row] = {}
        self.sum_dl = [0.0] * num_instances
        self.sum_du = [0.0] * num_instances

    def observe(self, ids: List[int], probs: List[List[float]],
                labels: List[int]) -> None:
        for i, row, label in zip(ids, probs, labels):
            self.buffer[i] = (row, label)  # the last occurrence wins

    def end_epoch(self) -> int:
        for i, (row, label) in self.buffer.items():
            if i in self.prev:
                prev = self.prev[i]
            else:
                prev = [1.0 / self.k_classes] * self.k_classes
            if self.storage == 'dense':
                cur = first = row
            elif self.storage == 'dense_fp16':  # new rows are coded too
                cur = first = [half_code(p) for p in row]
            else:
                cur = reference_codec(row, label, self.topk)
                first = row  # top-k's first term is the exact one
            # first_term='skip' adds none (the prediction is only stored).
            dl, du = reference_split(prev,
                                     first if i not in self.prev else cur,
                                     label)
            if i not in self.prev and self.first_term == 'skip':
                dl = du = 0.0
            self.sum_dl[i] += dl
            self.sum_du[i] += du
            self.prev[i] = cur
        updated = len(self.buffer)
        self.buffer = {}
        return updated

    def reset(self, ids: List[int]) -> None:
        for i in ids:
            self.sum_dl[i] = self.sum_du[i] = 0.0
            self.prev.pop(i, None)
            self.buffer.pop(i, None)

    def difficulty(self) -> List[float]:
        return [(self.c + du) / (self.c + dl)
                for dl, du in zip(self.sum_dl, self.sum_du)]


def random_rows(rng: np.random.Generator, n: int, num_classes: int,
                scale: float) -> np.ndarray:
    logits = rng.normal(size=(n, num_classes)) * scale
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def make_program(rng: np.random.Generator, num_instances: int,
                 num_classes: int, epochs: int) -> List[tuple]:
    """A random sequence of observe / reset / end_epoch steps."""
    labels = rng.integers(0, num_classes, num_instances)
    steps: List[tuple] = []
    for _ in range(epochs):
        for _ in range(int(rng.integers(0, 4))):  # calls ("ranks")
            kind = rng.random()
            if kind < 0.15:
                steps.append(('observe', np.zeros(0, np.int64)))
            elif kind < 0.3:
                steps.append(
                    ('reset', rng.choice(num_instances,
                                         int(rng.integers(1, 4)))))
            else:
                size = int(rng.integers(1, num_instances + 3))
                if rng.random() < 0.5:  # unique, unsorted, some skipped
                    ids = rng.permutation(
                        num_instances)[:min(size, num_instances)]
                else:  # repeated ids
                    ids = rng.integers(0, num_instances, size)
                steps.append(('observe', ids))
        steps.append(('end_epoch', None))
    return [(kind, ids, labels) for kind, ids in steps]


class Ranks:
    """Two processes' records, merged at the epoch's end (the hook's way)."""

    def __init__(self, state: DifficultyState) -> None:
        self.records = [
            EpochRecords(state.topk, storage=state.storage) for _ in range(2)
        ]
        self.step = 0

    def add(self, rng: np.random.Generator, ids: np.ndarray, probs: np.ndarray,
            labels: np.ndarray) -> None:
        rank = int(rng.integers(2))
        self.step += 1  # later calls are later steps, as in training
        self.records[rank].add(
            torch.from_numpy(ids),
            torch.from_numpy(labels),
            torch.from_numpy(probs),
            step=self.step)

    def drop(self, ids: np.ndarray) -> None:
        for records in self.records:
            records.drop(torch.from_numpy(ids))

    def pending(self) -> int:
        parts = [r.peek() for r in self.records]
        ids = [p['ids'] for p in parts if 'ids' in p]
        return int(np.unique(np.concatenate(ids)).size) if ids else 0

    def take(self) -> dict:
        return merge_parts([r.take() for r in self.records])


def run_program(rng: np.random.Generator, steps: List[tuple],
                state: DifficultyState, ref: ReferenceState,
                route: str) -> None:
    """``route``: 'observe' (state.observe) or 'ranks' (records of two
    processes, merged)."""
    num_classes = state.num_classes
    ranks = Ranks(state)
    for kind, ids, labels in steps:
        if kind == 'reset':
            state.reset(ids)
            ranks.drop(ids)
            ref.reset(ids.tolist())
        elif kind == 'end_epoch':
            part = ranks.take() if route == 'ranks' else None
            assert state.end_epoch(part) == ref.end_epoch()
        else:
            probs = random_rows(rng, ids.size, num_classes,
                                float(rng.uniform(0.3, 4)))
            lab = labels[ids]
            if route == 'ranks':
                ranks.add(rng, ids, probs, lab)
            else:
                state.observe(ids, probs, lab)
            ref.observe(ids.tolist(),
                        probs.astype(np.float64).tolist(), lab.tolist())
            pending = ranks.pending() if route == 'ranks' else \
                state.num_pending
            assert pending == len(ref.buffer)
        np.testing.assert_allclose(
            state.difficulty(), ref.difficulty(), rtol=2e-3, atol=1e-6)
        assert state.observed.tolist() == [i in ref.prev for i in range(ref.n)]


CASES = [('dense', 3, 'prior', 'observe'), ('topk', 3, 'prior', 'observe'),
         ('topk', 0, 'prior', 'observe'), ('topk', 3, 'prior', 'ranks'),
         ('dense', 3, 'prior', 'ranks'), ('dense', 3, 'skip', 'observe'),
         ('topk', 3, 'skip', 'ranks'), ('dense_fp16', 3, 'prior', 'observe'),
         ('dense_fp16', 3, 'prior', 'ranks'),
         ('dense_fp16', 3, 'skip', 'observe')]


@pytest.mark.parametrize('storage,topk,first_term,route', CASES)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_matches_brute_force_reference(storage: str, topk: int,
                                       first_term: str, route: str,
                                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_instances = int(rng.integers(1, 9))
    num_classes = int(rng.integers(topk + 2, 9))
    c = float(rng.choice([0.5, 1.0, 3.0]))
    state = DifficultyState(
        num_instances,
        num_classes,
        c=c,
        storage=storage,
        topk=topk,
        first_term=first_term)
    ref = ReferenceState(num_instances, num_classes, c, storage, topk,
                         first_term)
    steps = make_program(rng, num_instances, num_classes,
                         int(rng.integers(1, 6)))
    run_program(rng, steps, state, ref, route)


@pytest.mark.parametrize('storage', ['dense', 'dense_fp16', 'topk'])
def test_unique_unsorted_ids_land_on_their_instance(storage: str) -> None:
    # The reproduction of the ordering defect: instance 2 is the only one
    # whose prediction moved, so it is the only one below D = 1 (K = 4:
    # the uniform 0.25 is exact in every storage's codes).
    state = DifficultyState(3, 4, storage=storage, topk=1)
    state.observe([2, 0, 1], [[.85, .05, .05, .05], [.25] * 4, [.25] * 4],
                  [0, 0, 0])
    state.end_epoch()
    d = state.difficulty()
    assert d[2] < 1 and d[0] == 1 and d[1] == 1


def reference_fill_unseen(d: List[float], observed: List[bool],
                          labels: List[int], policy: str) -> List[float]:
    """fill_unseen in loops."""
    seen = [x for x, o in zip(d, observed) if o]
    out = []
    for x, o, label in zip(d, observed, labels):
        if o or policy == 'one' or not seen:
            out.append(x)
            continue
        same = [y for y, p, m in zip(d, observed, labels) if p and m == label]
        pool = same if policy == 'class_mean' and same else seen
        out.append(sum(pool) / len(pool))
    return out


@pytest.mark.parametrize('policy', ['one', 'mean', 'class_mean'])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fill_unseen_matches_loops(policy: str, seed: int) -> None:
    from mmdiff.core import fill_unseen
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 12))
    d = rng.lognormal(0, 0.5, n)
    observed = rng.random(n) < rng.random()
    labels = rng.integers(0, 4, n)
    got = fill_unseen(d, observed, labels, policy)
    want = reference_fill_unseen(d.tolist(), observed.tolist(),
                                 labels.tolist(), policy)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(got[observed], d[observed])


def test_fill_unseen_bad_input() -> None:
    from mmdiff.core import fill_unseen
    with pytest.raises(ValueError, match='policy'):
        fill_unseen([1.0], [True], [0], 'median')
    with pytest.raises(ValueError, match='one entry per instance'):
        fill_unseen([1.0, 2.0], [True], [0, 0])


def reference_normalize(d: List[float], labels: List[int]) -> List[float]:
    """normalize_difficulty(..., 'class') in loops."""
    out = []
    for x, label in zip(d, labels):
        same = [y for y, m in zip(d, labels) if m == label]
        mean = sum(same) / len(same)
        out.append(x / mean if mean > 0 else 1.0)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_normalize_difficulty_matches_loops(seed: int) -> None:
    from mmdiff.core import normalize_difficulty
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 14))
    # Unsorted, repeated and skipped labels, zeros and a zero class.
    labels = rng.choice([0, 3, 3, 5, 9], n)
    d = rng.lognormal(0, 1.0, n) * (rng.random(n) < 0.8)
    d[labels == 9] = 0.0
    got = normalize_difficulty(d, labels, 'class')
    np.testing.assert_allclose(
        got, reference_normalize(d.tolist(), labels.tolist()), rtol=1e-12)
    np.testing.assert_array_equal(normalize_difficulty(d, labels, 'none'), d)
    for label in set(labels.tolist()) - {9}:
        if d[labels == label].any():  # every class averages to 1
            assert got[labels == label].mean() == pytest.approx(1.0)


def test_normalize_difficulty_bad_input() -> None:
    from mmdiff.core import normalize_difficulty
    with pytest.raises(ValueError, match="normalize must be one of"):
        normalize_difficulty([1.0], [0], 'image')
    with pytest.raises(ValueError, match='one entry per instance'):
        normalize_difficulty([1.0, 2.0], [0], 'class')
