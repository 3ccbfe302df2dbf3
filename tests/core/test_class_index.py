"""Tests of mmdiff.core.class_index (no mmengine / mmdet imports)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.core.class_index import ImageClassIndex

# 4 images, 3 classes: {0, 1}, {1}, {}, {2}, given with duplicates and out of
# order as a detection dataset's per-object labels would be.
LISTS = [[1, 0, 1], [1], [], [2, 2]]


def test_from_lists_dedups_and_sorts():
    index = ImageClassIndex.from_lists(LISTS, 3)
    assert index.indptr.tolist() == [0, 2, 3, 3, 4]
    assert index.indices.tolist() == [0, 1, 1, 2]
    assert index.indptr.dtype == np.int64
    assert index.indices.dtype == np.int32
    assert index.num_images == 4
    assert index.num_classes == 3
    assert index.num_entries == 4
    assert index.labels_of(0).tolist() == [0, 1]
    assert index.labels_of(2).tolist() == []
    assert index.classes_per_image().tolist() == [2, 1, 0, 1]
    assert index.images_per_class().tolist() == [1, 2, 1]
    assert index.entry_images().tolist() == [0, 0, 1, 3]


def test_from_lists_accepts_arrays_and_tuples():
    lists = [np.array([2, 0], dtype=np.int64), (1, ), []]
    index = ImageClassIndex.from_lists(lists, 3)
    assert index.indices.tolist() == [0, 2, 1]


def test_transpose():
    class_indptr, images = ImageClassIndex.from_lists(LISTS, 4).transpose()
    # class 3 has no image.
    assert class_indptr.tolist() == [0, 1, 3, 4, 4]
    assert images.tolist() == [0, 0, 1, 3]


def test_reduce_per_image():
    index = ImageClassIndex.from_lists(LISTS, 3)
    values = np.array([5.0, 1.0, 3.0])
    assert index.reduce_per_image(values, 'max', 0).tolist() == [5, 1, 0, 3]
    assert index.reduce_per_image(values, 'min', -1).tolist() == [1, 1, -1, 3]
    groups = np.array([0, 2, 1])
    out = index.reduce_per_image(groups, 'min', -1)
    assert out.tolist() == [0, 2, -1, 1]
    with pytest.raises(ValueError, match='op'):
        index.reduce_per_image(values, 'sum')
    with pytest.raises(ValueError, match='class_values'):
        index.reduce_per_image(values[:2])


def test_no_labels_at_all():
    index = ImageClassIndex.from_lists([[], []], 2)
    assert index.num_images == 2
    assert index.images_per_class().tolist() == [0, 0]
    assert index.reduce_per_image(np.ones(2), 'max', 7.0).tolist() == [7, 7]


def test_bad_labels_name_the_image():
    with pytest.raises(ValueError, match='image 2 has class label 3'):
        ImageClassIndex.from_lists([[0], [], [3]], 3)
    with pytest.raises(ValueError, match='image 0 has class label -1'):
        ImageClassIndex.from_lists([[-1]], 3)


def test_constructor_validates():
    with pytest.raises(ValueError, match='num_classes'):
        ImageClassIndex(np.array([0]), np.array([]), 0)
    with pytest.raises(ValueError, match='indptr'):
        ImageClassIndex(np.array([0, 2, 1]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        ImageClassIndex(np.array([0, 1]), np.array([5]), 2)


@settings(database=None, max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 6), max_size=8), min_size=1, max_size=30))
def test_matches_python_sets(lists):
    index = ImageClassIndex.from_lists(lists, 7)
    for i, labels in enumerate(lists):
        assert index.labels_of(i).tolist() == sorted(set(labels))
    counts = [sum(c in set(labels) for labels in lists) for c in range(7)]
    assert index.images_per_class().tolist() == counts
    class_indptr, images = index.transpose()
    for c in range(7):
        expected = [i for i, labels in enumerate(lists) if c in labels]
        got = images[class_indptr[c]:class_indptr[c + 1]].tolist()
        assert got == expected
