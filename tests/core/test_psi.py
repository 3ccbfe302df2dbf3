"""Tests of the PSI split (Yu et al., CVPR 2022, Sec. 3; docs/method.md)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmdiff.core import (compress, decompress, psi_split, psi_split_compressed,
                         psi_split_from_prior)

PROPS = settings(max_examples=60, deadline=None)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def dense_psi(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Reference PSI sum_j (q_j - p_j) ln(q_j / p_j), with psi_split's
    documented clamp of both values to eps inside the logarithm (scale-5
    softmax rows over few classes reach 1e-14)."""
    return ((q - p) *
            np.log(np.maximum(q, eps) / np.maximum(p, eps))).sum(axis=1)


@st.composite
def prob_pairs(draw: st.DrawFn, max_classes: int = 8, peaked: bool = False):
    """Two (n, K) softmax matrices and labels."""
    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    logits = rng.normal(size=(2, n, k)) * scale
    if peaked:
        logits[:, np.arange(n), rng.integers(0, k, n)] += 8
    labels = rng.integers(0, k, n)
    return softmax(logits[0]), softmax(logits[1]), labels


# ---------------------------------------------------------------------------
# hand-computed cases
def test_hand_computed_true_class_rises() -> None:
    # K = 3, true class 0:
    #   p_prev = (0.5, 0.3, 0.2), p_cur = (0.7, 0.2, 0.1)
    #   delta  = (+0.2, -0.1, -0.1)
    #   psi_0  = 0.2 ln(0.7 / 0.5) = 0.2 * 0.336472 = 0.0672944  (y rises: dl)
    #   psi_1  = -0.1 ln(0.2 / 0.3) = 0.1 * 0.405465 = 0.0405465 (falls: dl)
    #   psi_2  = -0.1 ln(0.1 / 0.2) = 0.1 * 0.693147 = 0.0693147 (falls: dl)
    #   dl = 0.1771557, du = 0
    p = np.array([[0.5, 0.3, 0.2]])
    q = np.array([[0.7, 0.2, 0.1]])
    dl, du = psi_split(p, q, np.array([0]))
    assert dl.dtype == np.float64 and isinstance(dl, np.ndarray)
    np.testing.assert_allclose(dl, [0.1771557], atol=1e-7)
    np.testing.assert_allclose(du, [0.0], atol=1e-15)


def test_hand_computed_true_class_falls() -> None:
    # Same vectors, true class 1 (its probability falls 0.3 -> 0.2):
    #   psi_1 = 0.0405465 -> du (true class falls)
    #   psi_0 = 0.0672944 -> du (a wrong class rises)
    #   psi_2 = 0.0693147 -> dl (a wrong class falls)
    p = np.array([[0.5, 0.3, 0.2]])
    q = np.array([[0.7, 0.2, 0.1]])
    dl, du = psi_split(p, q, np.array([1]))
    np.testing.assert_allclose(dl, [0.0693147], atol=1e-7)
    np.testing.assert_allclose(du, [0.1078410], atol=1e-7)


def test_hand_computed_from_uniform() -> None:
    # p_0 = (1/3, 1/3, 1/3) -> (0.8, 0.1, 0.1), true class 0:
    #   psi_0 = (0.8 - 1/3) ln(2.4)  = 0.466667 * 0.875469 = 0.408552
    #   psi_j = (0.1 - 1/3) ln(0.3)  = 0.233333 * 1.203973 = 0.280927, j=1,2
    #   dl = 0.970406, du = 0
    p = np.full((1, 3), 1 / 3)
    q = np.array([[0.8, 0.1, 0.1]])
    dl, du = psi_split(p, q, [0])
    np.testing.assert_allclose(dl, [0.970406], atol=1e-6)
    assert du[0] == 0


def test_zero_probabilities_are_clamped() -> None:
    # 0 -> 0.5 on class 1: psi_1 = 0.5 * (ln 0.5 - ln 1e-12) finite.
    p = np.array([[1.0, 0.0]])
    q = np.array([[0.5, 0.5]])
    dl, du = psi_split(p, q, [0])
    expected = 0.5 * math.log(1 / 0.5) + 0.5 * (
        math.log(0.5) - math.log(1e-12))
    assert np.isfinite(du).all() and dl[0] == 0
    np.testing.assert_allclose(du, [expected])
    # both zero: no contribution at all
    dl, du = psi_split(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), [0])
    assert dl[0] == 0 and du[0] == 0


# ---------------------------------------------------------------------------
# properties
@PROPS
@given(prob_pairs())
def test_split_sums_to_psi_and_is_nonnegative(case) -> None:
    p, q, labels = case
    dl, du = psi_split(p, q, labels)
    assert (dl >= 0).all() and (du >= 0).all()
    np.testing.assert_allclose(dl + du, dense_psi(p, q), rtol=1e-9, atol=1e-12)


@PROPS
@given(prob_pairs())
def test_unchanged_prediction_adds_nothing(case) -> None:
    p, _, labels = case
    dl, du = psi_split(p, p.copy(), labels)
    assert (dl == 0).all() and (du == 0).all()


@PROPS
@given(prob_pairs())
def test_reversing_time_swaps_learning_and_unlearning(case) -> None:
    p, q, labels = case
    dl, du = psi_split(p, q, labels)
    dl_rev, du_rev = psi_split(q, p, labels)
    np.testing.assert_allclose(dl, du_rev, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(du, dl_rev, rtol=1e-12, atol=1e-15)


@PROPS
@given(prob_pairs())
def test_torch_and_numpy_agree(case) -> None:
    p, q, labels = case
    dl, du = psi_split(p, q, labels)
    dl_t, du_t = psi_split(
        torch.from_numpy(p), torch.from_numpy(q), torch.from_numpy(labels))
    assert dl_t.dtype == torch.float64
    np.testing.assert_allclose(dl_t.numpy(), dl, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(du_t.numpy(), du, rtol=1e-12, atol=1e-15)
    dl32, du32 = psi_split(
        torch.from_numpy(p).float(),
        torch.from_numpy(q).float(), labels)
    assert dl32.dtype == torch.float32
    np.testing.assert_allclose(dl32.numpy(), dl, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(du32.numpy(), du, rtol=1e-3, atol=1e-5)


@PROPS
@given(prob_pairs())
def test_split_from_prior_is_split_from_uniform(case) -> None:
    _, q, labels = case
    uniform = np.full_like(q, 1 / q.shape[1])
    expected = psi_split(uniform, q, labels)
    for got, want in zip(psi_split_from_prior(q, labels), expected):
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    got = psi_split_from_prior(torch.from_numpy(q).float(), labels)
    assert got[0].dtype == torch.float32
    np.testing.assert_allclose(
        got[0].numpy(), expected[0], rtol=1e-3, atol=1e-5)


def test_torch_dtypes_and_mixed_inputs() -> None:
    p = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float16)
    q = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
    dl, du = psi_split(p, q, np.array([0]))
    assert isinstance(dl, torch.Tensor) and dl.dtype == torch.float32
    np.testing.assert_allclose(dl.numpy(), [0.1771557], atol=2e-3)


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(0)
    p = softmax(rng.normal(size=(64, 10)))
    q = softmax(rng.normal(size=(64, 10)))
    labels = rng.integers(0, 10, 64)
    dl, du = psi_split(p, q, labels)
    dl_c, du_c = psi_split(
        torch.from_numpy(p).cuda(),
        torch.from_numpy(q).cuda(), labels)
    assert dl_c.is_cuda and du_c.is_cuda
    np.testing.assert_allclose(dl_c.cpu().numpy(), dl, rtol=1e-10)
    np.testing.assert_allclose(du_c.cpu().numpy(), du, rtol=1e-10)


# ---------------------------------------------------------------------------
# validation
GOOD = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
LABELS = np.array([0, 2])


@pytest.mark.parametrize('which', ['p_prev', 'p_cur'])
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_raises_naming_argument(which: str, bad: float) -> None:
    broken = GOOD.copy()
    broken[1, 1] = bad
    args = dict(p_prev=GOOD, p_cur=GOOD)
    args[which] = broken
    with pytest.raises(ValueError, match=which):
        psi_split(args['p_prev'], args['p_cur'], LABELS)


@pytest.mark.parametrize('which', ['p_prev', 'p_cur'])
def test_logits_raise(which: str) -> None:
    args = dict(p_prev=GOOD, p_cur=GOOD)
    args[which] = np.log(GOOD) + 3
    with pytest.raises(ValueError, match=f'{which}.*apply softmax first'):
        psi_split(args['p_prev'], args['p_cur'], LABELS)


def test_rows_not_summing_to_one_raise() -> None:
    with pytest.raises(ValueError, match='looks like logits'):
        psi_split(GOOD, GOOD * 0.9, LABELS)


def test_values_outside_unit_interval_raise() -> None:
    bad = np.array([[1.5, -0.5, 0.0], [0.1, 0.1, 0.8]])
    with pytest.raises(ValueError, match=r'p_cur must lie in \[0, 1\]'):
        psi_split(GOOD, bad, LABELS)


@pytest.mark.parametrize('labels', [
    np.array([0, 3]),
    np.array([-1, 0]),
    np.array([0.0, 1.0]),
    np.array([0]),
    np.array([[0, 1]]),
])
def test_bad_labels_raise(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match='labels'):
        psi_split(GOOD, GOOD, labels)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match='p_prev'):
        psi_split(GOOD[0], GOOD, LABELS)
    with pytest.raises(ValueError, match='p_cur'):
        psi_split(GOOD, GOOD[:, :2] / GOOD[:, :2].sum(1, keepdims=True),
                  LABELS)
    with pytest.raises(ValueError, match='p_cur'):
        psi_split(GOOD, GOOD[:1], LABELS)


def test_bad_eps_raises() -> None:
    with pytest.raises(ValueError, match='eps'):
        psi_split(GOOD, GOOD, LABELS, eps=0)


def test_split_from_prior_validates() -> None:
    with pytest.raises(ValueError, match='probs'):
        psi_split_from_prior(np.log(GOOD), LABELS)
    with pytest.raises(ValueError, match='labels'):
        psi_split_from_prior(GOOD, [0, 5])


def test_check_false_skips_validation() -> None:
    dl, du = psi_split(GOOD * 2, GOOD * 2, LABELS, check=False)
    assert (dl == 0).all() and (du == 0).all()


# ---------------------------------------------------------------------------
# compressed records
def test_compress_hand_example() -> None:
    # K = 5, true class 2, k = 2: other classes by probability 1 > 4 > 0 > 3.
    probs = np.array([[0.1, 0.3, 0.4, 0.05, 0.15]], dtype=np.float32)
    true_prob, top_idx, top_prob, rest = compress(probs, [2], 2)
    assert isinstance(top_idx, np.ndarray) and top_idx.dtype == np.int16
    assert top_prob.dtype == np.float32 and rest.dtype == np.float32
    np.testing.assert_allclose(true_prob, [0.4])
    np.testing.assert_array_equal(top_idx, [[1, 4]])
    np.testing.assert_allclose(top_prob, [[0.3, 0.15]], rtol=1e-3)
    np.testing.assert_allclose(rest, [0.15], rtol=1e-6)
    # Rest is spread over the K - 1 - k = 2 unstored classes 0 and 3.
    dense = decompress([2], true_prob, top_idx, top_prob, rest, 5)
    np.testing.assert_allclose(
        dense, [[0.075, 0.3, 0.4, 0.075, 0.15]], rtol=1e-3)


def test_compress_true_class_among_top_is_skipped() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    _, top_idx, _, rest = compress(probs, torch.tensor([0, 0]), 1)
    assert isinstance(top_idx, torch.Tensor)
    assert top_idx[:, 0].tolist() == [1, 2]
    np.testing.assert_allclose(rest.numpy(), [0.1, 0.2], rtol=1e-6)


def test_compress_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match='k must be'):
        compress(GOOD, LABELS, 3)
    with pytest.raises(ValueError, match='k must be'):
        compress(GOOD, LABELS, -1)


def _split_compressed(p, q, labels_prev, labels_cur, k, valid=None):
    prev = [torch.as_tensor(labels_prev)
            ] + [torch.as_tensor(v) for v in compress(p, labels_prev, k)]
    cur = [torch.as_tensor(labels_cur)
           ] + [torch.as_tensor(v) for v in compress(q, labels_cur, k)]
    valid_t = None if valid is None else torch.as_tensor(valid)
    dl, du = psi_split_compressed(prev, cur, p.shape[1], prev_valid=valid_t)
    dense_prev = decompress(*prev, p.shape[1]).double().numpy()
    dense_cur = decompress(*cur, p.shape[1]).double().numpy()
    if valid is not None:
        dense_prev[~valid] = 1 / p.shape[1]
    ref = psi_split(dense_prev, dense_cur, labels_cur, check=False)
    return (dl.numpy(), du.numpy()), ref


@settings(max_examples=80, deadline=None)
@given(prob_pairs(max_classes=30), st.data())
def test_compressed_split_is_exact_on_represented_vectors(case, data) -> None:
    """The sparse formula equals the dense split of what records stand for.

    Covers a changed label between epochs and the uniform prior rows.
    """
    p, q, labels = case
    n, num_classes = p.shape
    k = data.draw(st.integers(0, num_classes - 1))
    labels_prev = np.where(
        np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n))),
        (labels + 1) % num_classes, labels)
    valid = np.array(
        data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    (dl, du), (dl_ref, du_ref) = _split_compressed(
        p.astype(np.float32), q.astype(np.float32), labels_prev, labels, k,
        valid)
    assert (dl >= 0).all() and (du >= 0).all()
    np.testing.assert_allclose(dl, dl_ref, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(du, du_ref, rtol=2e-4, atol=2e-6)


@PROPS
@given(prob_pairs(max_classes=12))
def test_compressed_with_all_classes_matches_dense(case) -> None:
    p, q, labels = case
    # Below 1.9e-9 stored values are float16 subnormals (absolute error
    # ~1e-12, like the eps clamp): outside this bound by design.
    assume(min(p.min(), q.min()) > 2e-9)
    k = p.shape[1] - 1
    (dl, du), _ = _split_compressed(
        p.astype(np.float32), q.astype(np.float32), labels, labels, k)
    dl_ref, du_ref = psi_split(p, q, labels)
    # Only the rounding of the stored probabilities (relative error
    # <= 2 ** -11 above 1.9e-9) differs: it moves each ln by <= 5e-4 and
    # each delta by <= 5e-4 (p + q), so each psi term by about
    # 1e-3 (|delta| + psi); values below 1.9e-9 lose precision (subnormal).
    bound = 3e-3 * (np.abs(q - p).sum(1) + dl_ref + du_ref) + 1e-6
    assert (np.abs(dl - dl_ref) <= bound).all()
    assert (np.abs(du - du_ref) <= bound).all()


def test_compressed_unchanged_adds_nothing() -> None:
    rng = np.random.default_rng(1)
    p = softmax(rng.normal(size=(20, 40)) * 3).astype(np.float32)
    labels = rng.integers(0, 40, 20)
    (dl, du), _ = _split_compressed(p, p.copy(), labels, labels, 4)
    assert (dl == 0).all() and (du == 0).all()
