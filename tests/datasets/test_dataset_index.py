"""The one walk of a dataset: images, objects, and wrappers' identities."""
import pickle
from typing import List

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset
from mmengine.dataset.dataset_wrapper import ClassBalancedDataset

from mmdiff.core import DatasetIndex
from mmdiff.datasets import (UnsupportedDatasetError, index_dataset,
                             install_global_sample_idx)
from mmdiff.samplers import DifficultyClassAwareSampler


class DetLike(BaseDataset):
    """mmdet-shaped data infos: instances with bbox_label / ignore_flag."""

    def __init__(self, images: List[List[tuple]], first_id: int = 1) -> None:
        self._images, self._first_id = images, first_id
        super().__init__(
            metainfo=dict(classes=('a', 'b', 'c')), serialize_data=True)

    def load_data_list(self) -> List[dict]:
        return [
            dict(
                img_id=self._first_id + i,
                img_path=f'img_{self._first_id + i}.jpg',
                instances=[
                    dict(bbox_label=label, ignore_flag=ignore)
                    for label, ignore in objects
                ]) for i, objects in enumerate(self._images)
        ]

    def get_cat_ids(self, idx: int) -> List[int]:  # as mmdet's
        return [i['bbox_label'] for i in self.get_data_info(idx)['instances']]


A = [[(0, 0), (2, 1)], [], [(1, 0), (1, 0), (0, 0)]]
B = [[(2, 0)], [(0, 0), (1, 0)]]


def test_plain_dataset_walk() -> None:
    index = index_dataset(DetLike(A))
    assert (index.num_indices, index.num_images) == (3, 3)
    # object 1 of image 0 is ignored: not an instance, but a class label
    assert index.num_objects == 4
    assert index.kept_counts().tolist() == [1, 0, 3]
    assert index.kept_labels().tolist() == [0, 1, 1, 0]
    assert index.class_index().labels_of(0).tolist() == [0, 2]
    assert index.images_per_class().tolist() == [2, 1, 1]
    assert index.img_ids.tolist() == [1, 2, 3]
    assert index.img_paths.tolist() == ['img_1.jpg', 'img_2.jpg', 'img_3.jpg']
    assert index.classes == ('a', 'b', 'c')


def test_concat_numbers_images_globally() -> None:
    concat = ConcatDataset([DetLike(A), DetLike(B, first_id=10)])
    index = index_dataset(concat)
    assert index.image_of_index.tolist() == [0, 1, 2, 3, 4]
    assert index.kept_counts().tolist() == [1, 0, 3, 1, 2]
    assert index.img_ids.tolist() == [1, 2, 3, 10, 11]
    install_global_sample_idx(concat)
    assert [concat[i]['sample_idx'] for i in range(5)] == [0, 1, 2, 3, 4]
    assert concat[3]['img_id'] == 10
    install_global_sample_idx(concat)  # idempotent
    assert concat[4]['sample_idx'] == 4
    # Spawned dataloader workers receive a pickled copy.
    copy = pickle.loads(pickle.dumps(concat))
    assert copy[4]['sample_idx'] == 4 and copy[0]['sample_idx'] == 0


def test_repeat_shows_one_image_several_times() -> None:
    repeat = RepeatDataset(DetLike(B), times=3)
    index = index_dataset(repeat)
    assert index.num_indices == 6 and index.num_images == 2
    assert index.image_of_index.tolist() == [0, 1, 0, 1, 0, 1]
    # r / c / f groups count images, not repeats
    assert index.images_per_class().tolist() == [1, 1, 1]
    assert index.class_index().num_images == 6
    assert index.class_index().labels_of(5).tolist() == [0, 1]
    assert index.per_index(np.array([0.5, 2.0])).tolist() == [.5, 2] * 3
    assert index.first_index_of_image().tolist() == [0, 1]
    install_global_sample_idx(repeat)
    assert repeat[5]['sample_idx'] == 1  # the inner index is the image


def test_nested_wrappers_and_a_part_used_twice() -> None:
    a = DetLike(A)
    # mmengine's ConcatDataset takes only BaseDatasets; torch's takes any.
    nested = torch.utils.data.ConcatDataset(
        [a, RepeatDataset(DetLike(B, first_id=10), times=2), a])
    index = index_dataset(nested)
    assert index.num_indices == 3 + 4 + 3
    assert index.num_images == 5  # `a` twice is the same three images
    assert index.image_of_index.tolist() == [0, 1, 2, 3, 4, 3, 4, 0, 1, 2]
    install_global_sample_idx(nested)
    assert [nested[i]['sample_idx']
            for i in range(10)] == index.image_of_index.tolist()


def test_class_balanced_dataset_is_refused() -> None:
    cbd = ClassBalancedDataset(DetLike(A), oversample_thr=0.5)
    for build in (index_dataset,
                  lambda d: DifficultyClassAwareSampler(d, seed=0)):
        with pytest.raises(
                UnsupportedDatasetError,
                match="scheme='repeat_factor' replaces"):
            build(cbd)


def test_unknown_wrapper_is_refused() -> None:

    class Subset:

        def __init__(self, dataset) -> None:
            self.dataset = dataset

        def __len__(self) -> int:
            return 1

    with pytest.raises(
            UnsupportedDatasetError, match='ConcatDataset and RepeatDataset'):
        index_dataset(Subset(DetLike(A)))


def test_bad_index_arguments() -> None:
    with pytest.raises(ValueError, match='rise from 0'):
        DatasetIndex([0], [0, 2], [1], 3)
    with pytest.raises(ValueError, match='image_of_index must lie'):
        DatasetIndex([1], [0, 1], [1], 3)
    with pytest.raises(ValueError, match='image 1 has class label 5'):
        DatasetIndex([0, 1], [0, 1, 2], [1, 5], 3)
    with pytest.raises(ValueError, match='one value per unique image'):
        DatasetIndex([0], [0, 1], [1], 3).per_index(np.ones(2))
