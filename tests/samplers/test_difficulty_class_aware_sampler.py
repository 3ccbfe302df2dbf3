"""Tests of DifficultyClassAwareSampler (mmengine adapter).

Statistical tests use fixed seeds, so they are deterministic; the stated
tolerances are about 3x the sampling noise of their number of draws.
"""
import logging
import os
from typing import List, Optional
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset
from mmengine.dataset.dataset_wrapper import ClassBalancedDataset
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import DataLoader

from mmdiff.core.frequency import frequency_groups
from mmdiff.core.repeat_factors import (instance_repeat_factors,
                                        lvis_repeat_factors)
from mmdiff.core.weights import sampling_weights
from mmdiff.samplers import DifficultyClassAwareSampler, dataset_class_index
from mmdiff.samplers import difficulty_class_aware_sampler as sampler_module

MODULE = 'mmdiff.samplers.difficulty_class_aware_sampler'

# 8 images, 4 classes, imbalanced: class 0 everywhere, class 3 once.
LABELS = [[0], [0, 1], [0], [0, 2], [0, 1], [0], [3, 0, 0], []]


class FakeDetDataset:
    """What the sampler needs from an mmdet dataset, and what
    AspectRatioBatchSampler needs (width / height)."""

    def __init__(self,
                 labels: List[List[int]],
                 num_classes: int = 4,
                 categories: Optional[list] = None) -> None:
        self.labels = labels
        self.metainfo = dict(
            classes=tuple(f'c{i}' for i in range(num_classes)))
        if categories is not None:
            self.metainfo['categories'] = categories

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> int:
        return idx

    def get_cat_ids(self, idx: int) -> List[int]:
        return list(self.labels[idx])

    def get_data_info(self, idx: int) -> dict:
        wide = idx % 2 == 0
        return dict(width=200 if wide else 100, height=100 if wide else 200)


class PidDataset(FakeDetDataset):

    def __getitem__(self, idx: int) -> tuple:
        return idx, os.getpid()


class ListDataset(BaseDataset):
    """An mmengine BaseDataset whose labels are its data list."""

    def __init__(self,
                 labels: List[List[int]],
                 num_classes: int = 4,
                 **kwargs) -> None:
        self._labels = labels
        super().__init__(
            metainfo=dict(classes=tuple(range(num_classes))),
            serialize_data=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        return [dict(labels=labels) for labels in self._labels]

    def get_cat_ids(self, idx: int) -> List[int]:
        return self.get_data_info(idx)['labels']


class NoCatIdsDataset(BaseDataset):
    """mmengine's BaseDataset declares get_cat_ids but raises."""

    def load_data_list(self) -> List[dict]:
        return [dict(x=1), dict(x=2)]


class ClassificationDataset:

    def __init__(self, labels: List[int]) -> None:
        self.labels = np.array(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def get_gt_labels(self) -> np.ndarray:
        return self.labels


def make(labels=LABELS, **kwargs) -> DifficultyClassAwareSampler:
    kwargs.setdefault('seed', 0)
    return DifficultyClassAwareSampler(FakeDetDataset(labels), **kwargs)


def test_registered_in_mmengine_root():
    sampler = DATA_SAMPLERS.build(
        dict(type='DifficultyClassAwareSampler', seed=1),
        default_args=dict(dataset=FakeDetDataset(LABELS)))
    assert isinstance(sampler, DifficultyClassAwareSampler)


def test_found_from_mmdet_scope():
    pytest.importorskip('mmdet')
    from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
    sampler = MMDET_DATA_SAMPLERS.build(
        dict(type='DifficultyClassAwareSampler', seed=1),
        default_args=dict(dataset=FakeDetDataset(LABELS)))
    assert isinstance(sampler, DifficultyClassAwareSampler)


def test_length_and_num_samples():
    sampler = make()
    assert len(sampler) == 8
    assert len(list(sampler)) == 8
    assert len(make(num_samples=5)) == 5
    with mock.patch(f'{MODULE}.get_dist_info', return_value=(1, 3)):
        sampler = make(num_samples=10)
    assert (len(sampler), sampler.total_size) == (4, 12)
    assert len(list(sampler)) == 4


def test_seed_none_is_synced():
    with mock.patch(f'{MODULE}.sync_random_seed', return_value=1234) as sync:
        sampler = make(seed=None)
    sync.assert_called_once()
    assert sampler.seed == 1234


def test_deterministic_per_seed_and_epoch():
    a, b = make(seed=7), make(seed=7)
    first = list(a)
    assert first == list(b) == list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(make(seed=8)) != first
    # A pure function of (seed, epoch, weights): the draw itself.
    g = torch.Generator()
    g.manual_seed(7 + 1)
    expected = torch.multinomial(
        torch.from_numpy(a.probabilities), 8, True, generator=g)
    assert list(a) == expected.tolist()


def test_draw_does_not_depend_on_threads_or_global_rng():
    sampler = make(num_samples=50000, seed=3)
    sampler.set_difficulty(np.arange(1, 9))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # xdist workers run with one
        first = list(sampler)
        torch.manual_seed(123)
        np.random.seed(5)
        torch.set_num_threads(1)
        assert list(sampler) == first
    finally:
        torch.set_num_threads(threads)


def test_rank_shards_are_slices_of_one_global_list():
    world = 3
    shards = []
    for rank in range(world):
        with mock.patch(f'{MODULE}.get_dist_info', return_value=(rank, world)):
            sampler = make(num_samples=10, seed=5)
        sampler.set_difficulty([1, 2, 3, 4, 5, 6, 7, 8], epoch=0)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        global_list = sampler.last_indices.tolist()
        assert len(global_list) == 12
        assert shards[-1] == global_list[rank:12:world]
    assert {len(shard) for shard in shards} == {4}
    interleaved = [shards[i % world][i // world] for i in range(12)]
    assert interleaved == global_list


def test_prior_until_difficulty_then_next_iter():
    sampler = make(scheme='class_aware')
    prior = sampling_weights('class_aware', sampler.class_index)
    np.testing.assert_array_equal(sampler.probabilities, prior)
    sampler.set_difficulty(np.arange(8.0) + 1, epoch=0)
    assert not np.array_equal(sampler.probabilities, prior)
    np.testing.assert_allclose(
        sampler.probabilities,
        sampling_weights('class_aware', sampler.class_index,
                         np.arange(8.0) + 1))


def test_warmup_epochs_use_the_prior():
    sampler = make(scheme='paper', warmup_epochs=2)
    sampler.set_weights(np.eye(8)[6])
    sampler.set_epoch(1)
    assert len(set(sampler)) > 1
    np.testing.assert_array_equal(sampler.probabilities, np.full(8, 1 / 8))
    sampler.set_epoch(2)
    assert set(sampler) == {6}


def test_set_weights_bypasses_the_scheme():
    sampler = make(scheme='class_aware', clip=1.5)
    sampler.set_weights([0, 0, 0, 0, 0, 0, 0, 3], epoch=4)
    assert set(sampler) == {7}  # image 7 has no class, still drawn


@pytest.mark.parametrize('method', ['set_difficulty', 'set_weights'])
@pytest.mark.parametrize(
    'values, match',
    [([1, 1, 1, 1, 1, 1, 1, float('nan')], 'of epoch 3 has 1 non-finite'),
     ([1, 1, 1, 1, 1, 1, 1, -1], 'of epoch 3 has 1 negative'),
     ([0] * 8, 'of epoch 3 is all zero'),
     ([1] * 7, r'of epoch 3 has shape \(7,\).*8 images')])
def test_bad_difficulty_names_epoch(method, values, match):
    sampler = make()
    before = sampler.probabilities.copy()
    with pytest.raises(ValueError, match=match):
        getattr(sampler, method)(values, epoch=3)
    np.testing.assert_array_equal(sampler.probabilities, before)


@pytest.mark.parametrize(
    'kwargs, match', [(dict(scheme='rfs'), "scheme must be one of.*'rfs'"),
                      (dict(beta=-2), 'beta .* got -2'),
                      (dict(thr=-1), 'thr .* got -1'),
                      (dict(temperature=0.0), 'temperature .* got 0.0'),
                      (dict(floor=2.0), 'floor .* got 2.0'),
                      (dict(clip=0.1), 'clip .* got 0.1'),
                      (dict(images_per_epoch=0), 'images_per_epoch .* got 0'),
                      (dict(warmup_epochs=-1), 'warmup_epochs .* got -1'),
                      (dict(seed=1.5), 'seed .* got 1.5')])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_dataset_without_labels_is_a_type_error():
    with pytest.raises(
            TypeError, match='list gives no class labels.*'
            'get_cat_ids'):
        DifficultyClassAwareSampler([1, 2, 3], seed=0)
    with pytest.raises(TypeError, match='NoCatIdsDataset gives no class'):
        DifficultyClassAwareSampler(NoCatIdsDataset(), seed=0)


def test_category_ids_instead_of_labels():
    with pytest.raises(
            ValueError, match='image 1 has class label 17.*'
            'not category ids'):
        DifficultyClassAwareSampler(FakeDetDataset([[0], [17]]), seed=0)


def test_empty_dataset():
    with pytest.raises(ValueError, match='empty'):
        DifficultyClassAwareSampler(FakeDetDataset([]), seed=0)


def test_mmengine_wrappers_and_classification():
    base = ListDataset(LABELS)
    index = dataset_class_index(base)
    assert index.num_classes == 4
    assert index.labels_of(6).tolist() == [0, 3]
    concat = dataset_class_index(ConcatDataset([base, ListDataset([[2]])]))
    assert concat.num_images == 9
    assert concat.labels_of(8).tolist() == [2]
    repeat = dataset_class_index(RepeatDataset(base, times=2))
    assert repeat.num_images == 16
    assert repeat.labels_of(14).tolist() == [0, 3]
    cls = dataset_class_index(ClassificationDataset([2, 0, 1, 1]))
    assert cls.num_classes == 3
    assert cls.images_per_class().tolist() == [1, 2, 1]
    sampler = DifficultyClassAwareSampler(
        ClassificationDataset([2, 0, 1, 1]), seed=0, scheme='class_aware')
    np.testing.assert_allclose(sampler.probabilities,
                               np.array([1, 1, 0.5, 0.5]) / 3)


def test_repeat_factors_match_mmengine_class_balanced_dataset():
    rng = np.random.default_rng(0)
    labels = [
        rng.choice(30, size=rng.integers(0, 4),
                   p=np.r_[0.5, [0.5 / 29] * 29]).tolist() for _ in range(300)
    ]
    base = ListDataset(labels, num_classes=30)
    for thr in (0.001, 0.05, 0.3):
        cbd = ClassBalancedDataset(base, oversample_thr=thr)
        expected = cbd._get_repeat_factors(base, thr)
        ours = lvis_repeat_factors(dataset_class_index(base), thr)
        np.testing.assert_allclose(ours, expected, rtol=1e-15)


def _tv(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(a / a.sum() - b / b.sum()).sum())


def test_repeat_factor_scheme_matches_rfs_expectation():
    thr = 0.3
    sampler = make(scheme='repeat_factor', thr=thr, num_samples=40000)
    factors = lvis_repeat_factors(sampler.class_index, thr)
    assert factors.max() > 1.5  # something is over-sampled
    counts = np.bincount(list(sampler), minlength=8)
    # Expected count of image i is n r_i / sum r; noise TV ~ 0.005.
    assert _tv(counts.astype(float), factors) < 0.015


def test_instance_repeat_factor_scheme_matches_irfs_expectation():
    thr = 0.3
    # Class 1 has many objects per image: IRFS repeats it less than RFS.
    labels = [[0], [0, 1, 1, 1], [0], [0, 2], [0, 1, 1], [0], [3, 0, 0], []]
    sampler = make(
        labels, scheme='instance_repeat_factor', thr=thr, num_samples=40000)
    # get_cat_ids lists one label per object.
    counts = np.bincount([c for img in labels for c in img], minlength=4)
    assert counts.tolist() == [8, 5, 1, 1]
    factors = instance_repeat_factors(sampler.class_index, counts, thr)
    np.testing.assert_allclose(sampler.prior, factors / factors.sum())
    assert not np.allclose(factors,
                           lvis_repeat_factors(sampler.class_index, thr))
    # Flat difficulty is IRFS itself, in expectation over the draws.
    sampler.set_difficulty(np.full(8, 0.7), epoch=0)
    np.testing.assert_array_equal(sampler.probabilities, sampler.prior)
    drawn = np.bincount(list(sampler), minlength=8)
    assert _tv(drawn.astype(float), factors) < 0.015
    # ... and difficulty multiplies it (beta 1).
    d = np.arange(1.0, 9.0)
    sampler.set_difficulty(d, epoch=0)
    np.testing.assert_allclose(sampler.probabilities,
                               factors * d / (factors * d).sum())


def test_class_aware_matches_mmdet_class_aware_sampler():
    pytest.importorskip('mmdet')
    from mmdet.datasets.samplers import ClassAwareSampler
    rng = np.random.default_rng(1)
    labels = [
        sorted(
            set(
                rng.choice(
                    6, size=rng.integers(1, 3),
                    p=[.5, .2, .1, .1, .05, .05]).tolist())) for _ in range(20)
    ]
    dataset = FakeDetDataset(labels, num_classes=6)
    draws = 20000
    theirs = np.zeros(20)
    mmdet_sampler = ClassAwareSampler(dataset, seed=0)
    for epoch in range(draws // 20):
        mmdet_sampler.set_epoch(epoch)
        theirs += np.bincount(list(mmdet_sampler), minlength=20)
    ours_sampler = DifficultyClassAwareSampler(
        dataset, seed=0, scheme='class_aware', num_samples=draws)
    ours_sampler.set_difficulty([2.5] * 20)  # equal: the prior
    ours = np.bincount(list(ours_sampler), minlength=20).astype(float)
    # Image distributions over 20 images, 20k draws each: noise TV ~ 0.01.
    assert _tv(ours, theirs) < 0.03
    assert _tv(ours, ours_sampler.probabilities) < 0.03


def test_works_inside_aspect_ratio_batch_sampler():
    pytest.importorskip('mmdet')
    from mmdet.datasets.samplers import AspectRatioBatchSampler
    sampler = make(num_samples=40)
    batch_sampler = AspectRatioBatchSampler(
        sampler, batch_size=4, drop_last=False)
    batches = list(batch_sampler)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == sorted(sampler.last_indices.tolist())
    for batch in batches[:-2]:  # the leftovers may mix orientations
        assert len({i % 2 for i in batch}) == 1


def test_persistent_workers_see_new_weights_next_epoch():
    dataset = PidDataset(LABELS)
    sampler = DifficultyClassAwareSampler(dataset, seed=0, scheme='paper')
    loader = DataLoader(
        dataset,
        batch_size=4,
        sampler=sampler,
        num_workers=2,
        persistent_workers=True)
    seen, pids = [], []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        items = torch.cat([idx for idx, _ in loader]).tolist()
        pids.append(set(torch.cat([pid for _, pid in loader]).tolist()))
        seen.append(items)
        if epoch == 0:
            sampler.set_weights(np.eye(8)[5], epoch=0)
        if epoch == 1:
            sampler.set_difficulty(np.eye(8)[2] * 4, epoch=1)
    assert len(set(seen[0])) > 1
    assert set(seen[1]) == {5}
    assert set(seen[2]) == {2}
    assert pids[0] == pids[1] == pids[2]  # the same worker processes
    assert os.getpid() not in pids[0]


def test_state_dict_round_trip(tmp_path, monkeypatch):
    sampler = make(scheme='repeat_factor', thr=0.3, seed=11)
    sampler.set_difficulty(np.arange(1.0, 9.0), epoch=4)
    sampler.set_epoch(5)
    path = tmp_path / 'state.pth'
    torch.save(dict(sampler=sampler.state_dict()), path)
    state = torch.load(path, weights_only=True)['sampler']
    resumed = make(scheme='repeat_factor', thr=0.3, seed=99)
    resumed.load_state_dict(state)
    assert (resumed.seed, resumed.epoch, resumed.difficulty_epoch) == (11, 5,
                                                                       4)
    assert list(resumed) == list(sampler)

    sampler.set_weights(np.eye(8)[1])
    resumed.load_state_dict(sampler.state_dict())
    assert set(resumed) == {1}

    logged = []
    monkeypatch.setattr(sampler_module, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    make(scheme='paper').load_state_dict(sampler.state_dict())
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    assert 'the configured values are used' in logged[0][0]
    with pytest.raises(ValueError, match='for 8 images but the dataset has'):
        make(labels=LABELS[:5]).load_state_dict(sampler.state_dict())


def test_diagnostics_with_lvis_groups():
    sampler = DifficultyClassAwareSampler(
        FakeDetDataset(LABELS), seed=0, scheme='class_aware', num_samples=4000)
    sampler.set_groups(frequency_groups('fccr', sampler.class_index))
    before = sampler.diagnostics()
    assert 'max_repeats' not in before
    # Image 6 = {0, 3} is rare: 1/4 for class 3 + 1/4 * 1/7 for class 0.
    rare = 1 / 4 + 1 / 28
    assert before['group_mass']['r'] == pytest.approx(rare)
    list(sampler)
    out = sampler.diagnostics()
    assert out['epoch'] == 0 and out['scheme'] == 'class_aware'
    assert out['num_draws'] == 4000
    assert out['fraction_not_drawn'] == pytest.approx(1 / 8)  # image 7
    assert sum(out['group_draw_fraction'].values()) == pytest.approx(1)
    assert out['group_draw_fraction']['r'] == pytest.approx(rare, abs=0.03)


def test_set_groups():
    sampler = make()
    assert sampler.groups is None
    assert 'group_mass' not in sampler.diagnostics()
    sampler.set_groups([0, 1, 1, 1, 1, 1, 1, -1], names=('rare', 'other'))
    list(sampler)
    mass = sampler.diagnostics()['group_mass']
    assert set(mass) == {'rare', 'other'}
    with pytest.raises(ValueError, match='one id per image'):
        sampler.set_groups([0, 1])
    with pytest.raises(ValueError, match='id 3 but only 3 names'):
        sampler.set_groups([3] * 8)


def test_num_samples_is_a_deprecated_name_of_images_per_epoch():
    with pytest.warns(DeprecationWarning, match='images_per_epoch'):
        old = make(scheme='uniform', num_samples=5)
    new = make(scheme='uniform', images_per_epoch=5)
    assert old.images_per_epoch == new.images_per_epoch == 5
    assert len(old) == len(new) == old.num_samples == 5  # one rank
    assert list(old) == list(new)
    with pytest.raises(ValueError, match='images_per_epoch only'):
        make(scheme='uniform', num_samples=5, images_per_epoch=5)
