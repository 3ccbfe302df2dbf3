"""Tests of image-level aggregation of instance difficulties."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.core import (image_difficulty, instance_offsets, instance_to_image,
                         object_ids)


def test_hand_computed() -> None:
    # Image 0: objects 0, 1 (D = 0.5, 1.5); image 1: no objects;
    # image 2: object 2 (D = 2.0); image 3: objects 3, 4, 5 (1, 1, 4).
    #   mean = (1.0, empty, 2.0, 2.0), max = (1.5, empty, 2.0, 4.0),
    #   sum = (2.0, empty, 2.0, 6.0).
    diff = np.array([0.5, 1.5, 2.0, 1.0, 1.0, 4.0])
    image = instance_to_image([2, 0, 1, 3])
    np.testing.assert_array_equal(image, [0, 0, 2, 3, 3, 3])
    mean = image_difficulty(diff, image, 4)
    assert mean.dtype == np.float64
    np.testing.assert_allclose(mean, [1.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(
        image_difficulty(diff, image, 4, reduce='max', empty_value=0.0),
        [1.5, 0.0, 2.0, 4.0])
    np.testing.assert_allclose(
        image_difficulty(diff, image, 4, reduce='sum'), [2.0, 1.0, 2.0, 6.0])


def test_unsorted_instances_and_torch_input() -> None:
    diff = torch.tensor([4.0, 0.5, 1.0])
    image = torch.tensor([1, 0, 1])
    np.testing.assert_allclose(
        image_difficulty(diff, image, 3, reduce='max'), [0.5, 4.0, 1.0])
    np.testing.assert_allclose(
        image_difficulty(diff, image, 2, reduce='mean'), [0.5, 2.5])


def test_no_instances() -> None:
    out = image_difficulty(np.zeros(0), np.zeros(0, dtype=np.int64), 3)
    np.testing.assert_array_equal(out, np.ones(3))
    assert image_difficulty(np.zeros(0), np.zeros(0), 0).shape == (0, )


def test_offsets() -> None:
    np.testing.assert_array_equal(
        instance_offsets([2, 0, 1, 3]), [0, 2, 2, 3, 6])
    np.testing.assert_array_equal(instance_offsets([]), [0])
    with pytest.raises(ValueError, match='num_objects_per_image'):
        instance_offsets([1, -1])
    with pytest.raises(ValueError, match='num_objects_per_image'):
        instance_to_image([1.5])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=20),
    st.integers(0, 2**31 - 1))
def test_reductions_are_bounded(counts, seed) -> None:
    rng = np.random.default_rng(seed)
    image = instance_to_image(counts)
    diff = rng.uniform(0.1, 5, image.size)
    mean = image_difficulty(diff, image, len(counts))
    high = image_difficulty(diff, image, len(counts), reduce='max')
    total = image_difficulty(diff, image, len(counts), reduce='sum')
    indptr = instance_offsets(counts)
    for i, count in enumerate(counts):
        objs = diff[indptr[i]:indptr[i + 1]]
        if count == 0:
            assert mean[i] == high[i] == total[i] == 1.0
            continue
        assert objs.min() - 1e-12 <= mean[i] <= high[i] == objs.max()
        np.testing.assert_allclose(total[i], objs.sum())


def test_bad_inputs_raise() -> None:
    diff, image = np.ones(3), np.array([0, 1, 1])
    with pytest.raises(ValueError, match='reduce'):
        image_difficulty(diff, image, 2, reduce='median')
    with pytest.raises(ValueError, match='instance_image'):
        image_difficulty(diff, np.array([0, 2, 1]), 2)
    with pytest.raises(ValueError, match='instance_image'):
        image_difficulty(diff, np.array([0, -1, 1]), 2)
    with pytest.raises(ValueError, match='instance_image'):
        image_difficulty(diff, image[:2], 2)
    with pytest.raises(ValueError, match='instance_image'):
        image_difficulty(diff, image.astype(float), 2)
    with pytest.raises(ValueError, match='instance_difficulty'):
        image_difficulty(np.array([1, np.nan, 1]), image, 2)
    with pytest.raises(ValueError, match='instance_difficulty'):
        image_difficulty(np.ones((3, 1)), image, 2)
    with pytest.raises(ValueError, match='num_images'):
        image_difficulty(diff, image, -1)
    with pytest.raises(ValueError, match='empty_value'):
        image_difficulty(diff, image, 2, empty_value=float('nan'))


def test_object_ids_by_loops() -> None:
    """(image, GT index) -> object id, unsorted, repeated, past the end."""
    counts = [3, 0, 2, 4]
    offsets = torch.from_numpy(instance_offsets(counts))
    image = torch.tensor([3, 0, 3, 2, 0, 1, 2])
    gt_index = torch.tensor([1, 2, 1, 0, 5, 0, 2])
    ids, valid = object_ids(offsets, image, gt_index)
    expected_ids, expected_valid = [], []
    for i, g in zip(image.tolist(), gt_index.tolist()):
        expected_ids.append(sum(counts[:i]) + g)
        expected_valid.append(g < counts[i])
    assert ids.tolist() == expected_ids
    assert valid.tolist() == expected_valid
    ids, valid = object_ids(offsets, image[:0], gt_index[:0])
    assert ids.numel() == 0 and valid.numel() == 0
