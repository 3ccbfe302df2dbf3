"""Population stability index (PSI) split into learning / unlearning.

Implements the per-epoch difficulty terms of Yu et al., CVPR 2022, "A
Re-Balancing Strategy for Class-Imbalanced Classification Based on Instance
Difficulty", Sec. 3 (see docs/method.md). For an instance with true class
``y`` and two class-probability vectors ``p`` (previous epoch) and ``q``
(current epoch)::

    delta_j = q_j - p_j
    psi_j   = delta_j * ln(q_j / p_j)                      (>= 0)
    dl = [delta_y > 0] psi_y + sum_{j != y} [delta_j < 0] psi_j   (learning)
    du = [delta_y < 0] psi_y + sum_{j != y} [delta_j > 0] psi_j   (unlearning)

so that ``dl + du = sum_j psi_j`` (the PSI between ``p`` and ``q``).

Zero probabilities (mmdiff): both vectors are clamped to ``eps`` inside the
logarithm only; ``delta`` uses the raw values. Clamping is monotone, so the
sign of the log-ratio never contradicts the sign of ``delta`` and every
``psi_j`` stays finite and >= 0.

Shapes: ``n`` instances, ``K`` classes, ``k`` stored "other" classes.

Entry points:

- :func:`psi_split` works on dense (n, K) probability matrices.
- :func:`psi_split_from_prior` is the first term, from ``p_0 = 1 / K``.
- :func:`psi_split_compressed` works on the compressed records of
  :func:`mmdiff.core.state.compress` (true-class probability, top-k other
  classes, remaining mass), see its docstring for the exact formulation.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch

from .validation import (ArrayLike, check_labels, check_positive, check_probs,
                         is_torch, to_tensor)

__all__ = ['psi_split', 'psi_split_from_prior', 'psi_split_compressed']

# (labels, true_prob, top_idx, top_prob, rest), see state.compress.
CompressedRecord = Sequence[torch.Tensor]
TensorOrFloat = Union[torch.Tensor, float]


def _psi(p: torch.Tensor, q: torch.Tensor, eps: float) -> torch.Tensor:
    """Element-wise ``(q - p) * ln(q / p)`` with ``eps`` clamped logs."""
    log_ratio = torch.log(q.clamp_min(eps)) - torch.log(p.clamp_min(eps))
    # clamp_min(0) only removes a possible -0.0 / rounding sign flip.
    return ((q - p) * log_ratio).clamp_min_(0)


def _split_tensors(p: TensorOrFloat, q: torch.Tensor, labels: torch.Tensor,
                   eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense PSI split on validated tensors of one dtype and device.

    ``p`` may be a float (the uniform prior). Float arithmetic only: on CPU
    torch's bool kernels are several times slower than float ones, which
    matters on (n, K) matrices.
    """
    delta = q - p
    if isinstance(p, torch.Tensor):
        log_p = torch.log(p.clamp_min(eps))
    else:
        log_p = math.log(max(p, eps))
    psi = delta * (torch.log(q.clamp_min(eps)) - log_p)
    psi.clamp_min_(0)  # removes a possible -0.0 / rounding sign flip
    # 2 psi_j where delta_j > 0 (rise) / < 0 (fall), else exactly 0.
    signed = psi * torch.sign(delta)
    rise = (psi + signed).sum(dim=1) * 0.5
    fall = (psi - signed).sum(dim=1) * 0.5
    # Learning: wrong classes falling, plus the true class if it rose;
    # unlearning the other way round.
    lab = labels.long().unsqueeze(1)
    true_signed = signed.gather(1, lab).squeeze(1)
    # clamp: psi_y cancels against its share of fall / rise.
    return ((fall + true_signed).clamp_min_(0),
            (rise - true_signed).clamp_min_(0))


def psi_split(p_prev: ArrayLike,
              p_cur: ArrayLike,
              labels: ArrayLike,
              eps: float = 1e-12,
              check: bool = True) -> Tuple[ArrayLike, ArrayLike]:
    """Split the PSI between two predictions into learning and unlearning.

    Worked 3-class example (true class 0)::

        p_prev = (0.5, 0.3, 0.2), p_cur = (0.7, 0.2, 0.1)
        delta  = (0.2, -0.1, -0.1)
        psi    = (0.2 ln 1.4, 0.1 ln 1.5, 0.1 ln 2)
               = (0.06729, 0.04055, 0.06931)
        dl = 0.17716 (true class up, both wrong classes down), du = 0

    Args:
        p_prev (np.ndarray | torch.Tensor): (n, K) probabilities of the
            previous epoch.
        p_cur (np.ndarray | torch.Tensor): (n, K) probabilities of the
            current epoch.
        labels (np.ndarray | torch.Tensor): (n,) integer true classes in
            [0, K).
        eps (float, optional): Lower clamp applied inside the logarithm so
            zero probabilities give finite terms. Defaults to 1e-12.
        check (bool, optional): Validate shapes and values (finite, rows
            summing to 1, in [0, 1], labels in range). Defaults to True.

    Returns:
        tuple: ``(dl, du)``, each of shape (n,). numpy inputs give numpy
        float64 arrays; if either probability input is a torch tensor the
        result is a torch tensor on ``p_cur``'s device (``p_prev``'s if only
        it is a tensor) in the promoted dtype, at least float32.

    Raises:
        ValueError: On invalid inputs, naming the offending argument.
    """
    eps = check_positive(eps, 'eps')
    as_numpy = not is_torch(p_prev, p_cur)
    if isinstance(p_cur, torch.Tensor):
        device = p_cur.device
    elif isinstance(p_prev, torch.Tensor):
        device = p_prev.device
    else:
        device = torch.device('cpu')
    prev = to_tensor(p_prev, 'p_prev', device)
    cur = to_tensor(p_cur, 'p_cur', device)
    labels_t = to_tensor(labels, 'labels', device)
    if check:
        check_probs(prev, 'p_prev')
        check_probs(
            cur, 'p_cur', num_classes=prev.shape[1], num_rows=prev.shape[0])
        check_labels(labels_t, prev.shape[0], prev.shape[1])
    if as_numpy:
        dtype = torch.float64
    else:
        dtype = torch.promote_types(
            torch.promote_types(prev.dtype, cur.dtype), torch.float32)
    dl, du = _split_tensors(prev.to(dtype), cur.to(dtype), labels_t, eps)
    if as_numpy:
        return dl.numpy(), du.numpy()
    return dl, du


def psi_split_from_prior(probs: ArrayLike,
                         labels: ArrayLike,
                         eps: float = 1e-12,
                         check: bool = True) -> Tuple[ArrayLike, ArrayLike]:
    """:func:`psi_split` from the uniform prior ``p_0 = 1 / K`` to ``probs``.

    The first term of every instance. Computed from the dense prediction it
    is exact, which a compressed record cannot be: with a uniform stand-in
    for the unstored classes, ``ln`` of their mean replaces the mean of
    their ``ln`` (Jensen), an error of about Var(ln p_tail) / 2 in ``dl``
    whatever the tail's mass. :class:`~mmdiff.core.state.DifficultyState`
    therefore keeps this exact term for instances seen for the first time.

    Args:
        probs (np.ndarray | torch.Tensor): (n, K) probabilities.
        labels (np.ndarray | torch.Tensor): (n,) true classes in [0, K).
        eps (float, optional): Lower clamp inside the logarithm. Defaults
            to 1e-12.
        check (bool, optional): Validate the inputs. Defaults to True.

    Returns:
        tuple: ``(dl, du)`` of shape (n,), typed as in :func:`psi_split`.
    """
    eps = check_positive(eps, 'eps')
    as_numpy = not is_torch(probs)
    cur = to_tensor(probs, 'probs')
    labels_t = to_tensor(labels, 'labels', cur.device)
    if check:
        check_probs(cur, 'probs')
        check_labels(labels_t, cur.shape[0], cur.shape[1])
    dl, du = _split_from_prior(cur, labels_t, eps, as_numpy)
    if as_numpy:
        return dl.numpy(), du.numpy()
    return dl, du


def _split_from_prior(
        probs: torch.Tensor,
        labels: torch.Tensor,
        eps: float,
        float64: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`psi_split_from_prior` on validated tensors."""
    dtype = torch.float64 if float64 else torch.promote_types(
        probs.dtype, torch.float32)
    cur = probs.to(dtype)
    return _split_tensors(1.0 / cur.shape[1], cur, labels, eps)


def record_columns(labels: torch.Tensor, true_prob: torch.Tensor,
                   top_idx: torch.Tensor, top_prob: torch.Tensor,
                   rest: torch.Tensor, num_classes: int,
                   dtype: torch.dtype) -> Tuple[torch.Tensor, ...]:
    """A top-k record as class-major columns for :func:`split_columns`.

    ``labels``, ``true_prob``, ``rest``: (n,); ``top_idx``, ``top_prob``:
    (k, n) class-major. Returns (k + 1, n) classes and probabilities in
    ``dtype``, row 0 the label's, and the (n,) probability each unstored
    class stands for.
    """
    idx = torch.cat([labels.to(top_idx.dtype).unsqueeze(0), top_idx])
    prob = torch.cat([true_prob.to(dtype).unsqueeze(0), top_prob.to(dtype)])
    return idx, prob, rest_share(rest, num_classes - idx.shape[0], dtype)


def _record_columns(record: CompressedRecord, num_classes: int,
                    dtype: torch.dtype) -> Tuple[torch.Tensor, ...]:
    labels, true_prob, top_idx, top_prob, rest = record
    return record_columns(labels, true_prob, top_idx.t(), top_prob.t(), rest,
                          num_classes, dtype)


def rest_share(rest: torch.Tensor, free: int,
               dtype: torch.dtype) -> torch.Tensor:
    """Per-class share ``rest / free`` of the unstored mass (0 if none).

    Args:
        rest (torch.Tensor): (n,) mass of the unstored classes.
        free (int): Number of unstored classes, ``K - 1 - k``.
        dtype (torch.dtype): Result dtype.

    Returns:
        torch.Tensor: (n,) the probability each unstored class stands for.
    """
    if free > 0:
        return rest.to(dtype) / free
    return torch.zeros_like(rest, dtype=dtype)


def _indicator(diff: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``dtype`` 1 where the integer tensor ``diff`` is 0, else 0.

    Integer arithmetic instead of ``==``: on CPU torch's bool-producing and
    bool-consuming kernels run several times slower than int16 / float ones
    (measured).
    """
    return diff.abs_().neg_().add_(1).clamp_min_(0).to(dtype)


def _positive(x: torch.Tensor) -> torch.Tensor:
    """1.0 where ``x > 0``, else 0.0 (float, see ``_indicator``)."""
    return torch.sign(x).clamp_min_(0)


def split_columns(a_idx: torch.Tensor,
                  a_p: torch.Tensor,
                  a_u: torch.Tensor,
                  b_idx: torch.Tensor,
                  b_p: torch.Tensor,
                  b_u: torch.Tensor,
                  num_classes: int,
                  eps: float = 1e-12) -> Tuple[torch.Tensor, torch.Tensor]:
    """Kernel of :func:`psi_split_compressed` on class-major columns.

    ``a`` is the previous and ``b`` the current prediction, with ``m = k +
    1`` distinct stored classes per instance; row 0 is each record's true
    class and ``b_idx[0]`` is the label that decides directions, so rows
    1.. of ``b_idx`` never hold it. Class-major (m, n) layout keeps every
    broadcast's inner dimension contiguous and long.

    Args:
        a_idx (torch.Tensor): (m, n) stored classes of prev.
        a_p (torch.Tensor): (m, n) their probabilities, compute dtype.
        a_u (torch.Tensor): (n,) prev probability of each unstored class.
        b_idx (torch.Tensor): (m, n) stored classes of cur.
        b_p (torch.Tensor): (m, n) their probabilities.
        b_u (torch.Tensor): (n,) cur probability of each unstored class.
        num_classes (int): Number of classes K.
        eps (float, optional): Lower clamp inside the logarithm. Defaults
            to 1e-12.

    Returns:
        tuple: ``(dl, du)``, each (n,) in the dtype of ``b_p``.
    """
    m = b_idx.shape[0]
    dtype = b_p.dtype
    if a_idx.dtype != b_idx.dtype:
        a_idx, b_idx = a_idx.long(), b_idx.long()
    # hit[i, j] = 1 iff prev class i is cur class j (at most one j per i).
    # Differences of ids in [0, K) cannot overflow their signed dtype.
    hit = _indicator(a_idx.unsqueeze(1) - b_idx.unsqueeze(0), dtype)
    found = hit.sum(dim=1)
    # Sums with a single nonzero term: q1 is bit-exactly b_p or b_u.
    q1 = (hit * b_p.unsqueeze(0)).sum(dim=1) + (1 - found) * b_u
    new = 1 - hit.sum(dim=0)

    # Group 1: classes prev stores; learning if the true class rises or a
    # wrong one falls, i.e. (q - p) * (+1 true / -1 wrong) > 0.
    psi1 = _psi(a_p, q1, eps)
    sign1 = _indicator(a_idx - b_idx[0], dtype).mul_(2).sub_(1)
    learn1 = _positive((q1 - a_p) * sign1)
    # Group 2: classes only cur stores; prev value is prev's rest share.
    psi2 = _psi(a_u.unsqueeze(0), b_p, eps).mul_(new)
    sign2 = torch.full((m, 1), -1.0, dtype=dtype, device=b_p.device)
    sign2[0] = 1
    learn2 = _positive((b_p - a_u) * sign2)
    # Group 3: classes neither stores (never the true class): a_u -> b_u.
    count = (num_classes - m) - new.sum(dim=0)
    psi3 = _psi(a_u, b_u, eps).mul_(count)
    learn3 = _positive(a_u - b_u)

    dl = ((psi1 * learn1).sum(0) + (psi2 * learn2).sum(0) + psi3 * learn3)
    du = ((psi1 * (1 - learn1)).sum(0) + (psi2 * (1 - learn2)).sum(0) + psi3 *
          (1 - learn3))
    return dl, du


def psi_split_compressed(
    prev: CompressedRecord,
    cur: CompressedRecord,
    num_classes: int,
    eps: float = 1e-12,
    prev_valid: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """PSI split between two compressed predictions (mmdiff, docs/method.md).

    A compressed record stores, per instance, its label ``y``, the true
    class probability, ``k`` other classes with their probabilities and the
    remaining mass ``r``. It stands for the dense vector that has the stored
    values at the ``m = k + 1`` stored classes and ``u = r / (K - m)`` at
    every other class (:func:`mmdiff.core.state.decompress`).

    The result is the exact :func:`psi_split` of the two dense vectors
    represented by ``prev`` and ``cur``, computed in O(n m^2) without
    building them. Let ``A`` / ``B`` be the stored class sets of prev / cur
    and ``u_A`` / ``u_B`` their per-class rest shares. Classes fall into
    three groups:

    1. ``j in A``: prev value stored; cur value is the stored one if
       ``j in B`` else ``u_B``.
    2. ``j in B \\ A``: prev value ``u_A``; cur value stored.
    3. the ``K - |A u B|`` other classes: ``u_A`` -> ``u_B`` each, so they
       add ``(K - |A u B|) * psi(u_A, u_B)``. The true class (cur label) is
       always in ``B``, so this group is never the true class.

    Directions use the *current* label; if the label changed, prev's old
    true class is simply one of its stored classes. The top classes of a
    record must be distinct and exclude its label (``compress`` ensures
    both).

    Args:
        prev (sequence of torch.Tensor): ``(labels, true_prob, top_idx,
            top_prob, rest)`` of the previous predictions; shapes (n,),
            (n,), (n, k), (n, k), (n,) as returned by ``compress``.
        cur (sequence of torch.Tensor): Same for the current predictions,
            same ``k``, same device.
        num_classes (int): Number of classes K.
        eps (float, optional): Lower clamp inside the logarithm. Defaults
            to 1e-12.
        prev_valid (torch.Tensor, optional): (n,) bool; rows where it is
            False use the uniform prior ``p_0 = 1 / K`` as prev (the
            instance was never seen). Defaults to None (all valid).

    Returns:
        tuple: ``(dl, du)`` torch tensors of shape (n,) in float32 (float64
        if cur's true probabilities are float64), on the inputs' device.
    """
    dtype = torch.promote_types(cur[1].dtype, torch.float32)
    a_idx, a_p, a_u = _record_columns(prev, num_classes, dtype)
    b_idx, b_p, b_u = _record_columns(cur, num_classes, dtype)
    if prev_valid is not None:
        a_idx, a_p, a_u = uniform_where_invalid(a_idx, a_p, a_u, b_idx,
                                                prev_valid, num_classes)
    return split_columns(a_idx, a_p, a_u, b_idx, b_p, b_u, num_classes, eps)


def uniform_where_invalid(a_idx: torch.Tensor, a_p: torch.Tensor,
                          a_u: torch.Tensor, b_idx: torch.Tensor,
                          valid: torch.Tensor,
                          num_classes: int) -> Tuple[torch.Tensor, ...]:
    """Replace prev columns by the uniform prior ``p_0`` where not valid.

    Any index set represents the uniform vector; cur's is reused so that
    every class cur stores is matched.

    Args:
        a_idx (torch.Tensor): (m, n) prev stored classes.
        a_p (torch.Tensor): (m, n) prev stored probabilities.
        a_u (torch.Tensor): (n,) prev rest share.
        b_idx (torch.Tensor): (m, n) cur stored classes.
        valid (torch.Tensor): (n,) bool, False where prev does not exist.
        num_classes (int): Number of classes K.

    Returns:
        tuple: The substituted ``(a_idx, a_p, a_u)``.
    """
    unseen = ~valid
    uniform = 1.0 / num_classes
    a_idx = torch.where(unseen, b_idx, a_idx)
    a_p = a_p.masked_fill(unseen, uniform)
    a_u = a_u.masked_fill(unseen, uniform)
    return a_idx, a_p, a_u
