"""Input checks shared by the difficulty engine.

The difficulty of Yu et al., CVPR 2022 ("A Re-Balancing Strategy for
Class-Imbalanced Classification Based on Instance Difficulty") is built from
class-probability vectors. A silent mistake here (logits instead of
probabilities, a label off by one, a NaN from an AMP overflow) would corrupt
the sampling weights without any visible error, so every public entry point
of :mod:`mmdiff.core` checks its inputs and raises ``ValueError`` naming the
offending argument.

Every helper takes numpy arrays, torch tensors or nested lists and returns a
torch tensor; none of them imports anything beyond numpy, torch and the
standard library.
"""
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

# A float32 softmax over ~1e3 classes sums to 1 within ~1e-6; a row of logits
# essentially never lands within 1e-3 of 1. Half-precision rows carry ~4e-3
# relative error per element, hence the looser bound for them.
ROW_SUM_TOL = 1e-3
ROW_SUM_TOL_HALF = 2e-2

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def is_torch(*values: Any) -> bool:
    """Whether any of ``values`` is a torch tensor.

    Args:
        *values: Objects to inspect.

    Returns:
        bool: True if at least one value is a ``torch.Tensor``.
    """
    return any(isinstance(v, torch.Tensor) for v in values)


def to_tensor(
        value: Any,
        name: str,
        device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """Convert an array-like to a torch tensor without copying if possible.

    Args:
        value (Any): numpy array, torch tensor or nested sequence.
        name (str): Argument name used in error messages.
        device (str | torch.device, optional): Target device. Defaults to
            None (keep the tensor's device; CPU for non-tensors).

    Returns:
        torch.Tensor: The converted tensor.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f'{name} must be an array or tensor, got {type(value)}'
            ) from exc
        if array.dtype == object:
            raise ValueError(
                f'{name} must be a numeric array, got dtype object')
        if array.dtype.kind == 'u' and array.dtype != np.uint8:
            # torch has no uint16/32/64 arithmetic on every backend.
            array = array.astype(np.int64)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device is not None:
        tensor = tensor.to(device)
    return tensor


def row_sum_tolerance(dtype: torch.dtype) -> float:
    """Tolerance on ``|sum_j p_j - 1|`` for probability rows of ``dtype``.

    Args:
        dtype (torch.dtype): dtype of the probabilities as given.

    Returns:
        float: The allowed deviation of a row sum from 1.
    """
    return ROW_SUM_TOL_HALF if dtype in _HALF_DTYPES else ROW_SUM_TOL


def check_probs(probs: torch.Tensor,
                name: str,
                num_classes: Optional[int] = None,
                num_rows: Optional[int] = None) -> None:
    """Check that ``probs`` is an (n, K) matrix of probability rows.

    Args:
        probs (torch.Tensor): Candidate probabilities.
        name (str): Argument name used in error messages.
        num_classes (int, optional): Required K. Defaults to None (any).
        num_rows (int, optional): Required n. Defaults to None (any).

    Raises:
        ValueError: If the shape is wrong, a value is not finite, a row does
            not sum to 1 (probably logits) or a value leaves [0, 1].
    """
    if probs.dim() != 2:
        raise ValueError(f'{name} must be 2-D (instances, classes), got shape '
                         f'{tuple(probs.shape)}')
    if not (probs.is_floating_point()):
        raise ValueError(
            f'{name} must be floating point probabilities, got dtype '
            f'{probs.dtype}')
    if num_rows is not None and probs.shape[0] != num_rows:
        raise ValueError(
            f'{name} has {probs.shape[0]} rows, expected {num_rows}')
    if num_classes is not None and probs.shape[1] != num_classes:
        raise ValueError(
            f'{name} has {probs.shape[1]} classes, expected {num_classes}')
    if probs.numel() == 0:
        return
    # One row-sum pass and one min/max pass (bool kernels such as isfinite
    # are slow on CPU); a NaN / inf anywhere makes its row sum non-finite.
    acc = torch.float64 if probs.dtype == torch.float64 else torch.float32
    row_sum = probs.sum(dim=1, dtype=acc)
    if not bool(torch.isfinite(row_sum).all()) and \
            not bool(torch.isfinite(probs).all()):
        raise ValueError(f'{name} contains NaN or inf')
    worst = float((row_sum - 1).abs().max())
    if not worst <= row_sum_tolerance(probs.dtype):
        raise ValueError(
            f'rows of {name} must sum to 1 (worst deviation {worst:.3g}); '
            f'{name} looks like logits; apply softmax first')
    low, high = (float(v) for v in torch.aminmax(probs))
    if low < 0 or high > 1:
        raise ValueError(
            f'{name} must lie in [0, 1], got values in [{low:.3g}, '
            f'{high:.3g}]')


def _check_indices(values: torch.Tensor, name: str, what: str,
                   limit: int) -> None:
    """Integers in ``[0, limit)``, any shape; the message names ``what``."""
    if values.is_floating_point() or values.is_complex() or \
            values.dtype == torch.bool:
        raise ValueError(
            f'{name} must be integer {what}, got dtype {values.dtype}')
    if values.numel() == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= limit:
        raise ValueError(f'{name} must lie in [0, {limit}), got values in '
                         f'[{low}, {high}]')


def check_labels(labels: torch.Tensor,
                 num_rows: int,
                 num_classes: int,
                 name: str = 'labels') -> None:
    """Check that ``labels`` holds ``num_rows`` class indices in [0, K).

    Args:
        labels (torch.Tensor): Candidate labels.
        num_rows (int): Required length.
        num_classes (int): Number of classes K.
        name (str, optional): Argument name used in error messages.
            Defaults to 'labels'.

    Raises:
        ValueError: If labels are not 1-D integers in [0, K) of the right
            length.
    """
    if not (labels.is_floating_point() or labels.is_complex()
            or labels.dtype == torch.bool) and (labels.dim() != 1 or
                                                labels.shape[0] != num_rows):
        raise ValueError(f'{name} must have shape ({num_rows},), got '
                         f'{tuple(labels.shape)}')
    _check_indices(labels, name, 'class indices', num_classes)


def check_ids(ids: torch.Tensor,
              num_instances: int,
              name: str = 'ids') -> None:
    """Check that ``ids`` is a 1-D integer tensor of instance indices.

    Args:
        ids (torch.Tensor): Candidate instance ids.
        num_instances (int): Number of instances N; ids must be in [0, N).
        name (str, optional): Argument name used in error messages.
            Defaults to 'ids'.

    Raises:
        ValueError: If ids are not 1-D integers in [0, N).
    """
    if ids.dim() != 1:
        raise ValueError(f'{name} must be 1-D, got shape {tuple(ids.shape)}')
    _check_indices(ids, name, 'instance ids', num_instances)


def check_positive(value: Any, name: str) -> float:
    """Check that ``value`` is a finite real number > 0.

    Args:
        value (Any): Candidate number.
        name (str): Argument name used in error messages.

    Returns:
        float: ``value`` as a float.
    """
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{name} must be a number > 0, got {value!r}') \
            from exc
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f'{name} must be a finite number > 0, got {value!r}')
    return number


def check_int(value: Any, name: str, minimum: int) -> int:
    """Check that ``value`` is an integer >= ``minimum``.

    Args:
        value (Any): Candidate integer (bools are rejected).
        name (str): Argument name used in error messages.
        minimum (int): Smallest allowed value.

    Returns:
        int: ``value`` as a Python int.
    """
    if isinstance(
            value,
            bool) or not isinstance(value,
                                    (int, np.integer)) or value < minimum:
        raise ValueError(
            f'{name} must be an integer >= {minimum}, got {value!r}')
    return int(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (each option's one list).

    Raises:
        ValueError: Naming the option, its choices and the value.
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f'{name} must be one of {tuple(choices)}, got {value!r}')
    return value


SNAPSHOT_CONFIG = ('num_instances', 'num_classes', 'c', 'storage', 'topk',
                   'epoch')


class SnapshotMismatch(ValueError):
    """A difficulty snapshot made for another data set (other N or K)."""


def check_snapshot_config(state_dict: Any, num_instances: int,
                          num_classes: int, storages: Sequence[str]) -> tuple:
    """``(c, storage, topk, epoch)`` of a DifficultyState snapshot.

    Args:
        state_dict (Mapping): The snapshot.
        num_instances (int): N of the state that loads it.
        num_classes (int): K of the state that loads it.
        storages (Sequence[str]): The storages a snapshot may name.

    Raises:
        ValueError: If it is not a snapshot, belongs to another dataset
            (other N or K) or is malformed.
    """
    missing = [key for key in SNAPSHOT_CONFIG if key not in state_dict]
    if missing:
        raise ValueError(f'state_dict is not a DifficultyState snapshot: '
                         f'missing {missing}')
    n_ck = int(state_dict['num_instances'])
    k_ck = int(state_dict['num_classes'])
    if (n_ck, k_ck) != (num_instances, num_classes):
        raise SnapshotMismatch(
            f'the difficulty checkpoint was made for another dataset: it has '
            f'num_instances={n_ck}, num_classes={k_ck}, but this state has '
            f'num_instances={num_instances}, num_classes={num_classes}')
    storage = check_choice(state_dict['storage'], "state_dict['storage']",
                           storages)
    return (check_positive(state_dict['c'], 'c'), storage,
            check_int(state_dict['topk'], 'topk',
                      0), check_int(state_dict['epoch'], 'epoch', 0))


def snapshot_tensor(state_dict: Any, name: str, shape: tuple,
                    dtype: torch.dtype) -> torch.Tensor:
    """One tensor of a snapshot, checked against its expected layout.

    Raises:
        ValueError: If it is missing or has another shape or dtype.
    """
    if name not in state_dict:
        raise ValueError(f'state_dict lacks {name!r}')
    value = to_tensor(state_dict[name], name)
    if tuple(value.shape) != tuple(shape) or value.dtype != dtype:
        raise ValueError(f'state_dict[{name!r}] must be {dtype} of shape '
                         f'{tuple(shape)}, got {value.dtype} of shape '
                         f'{tuple(value.shape)}')
    return value
