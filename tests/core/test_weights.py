"""Tests of mmdiff.core.weights (no mmengine / mmdet imports).

Expected values are worked out by hand on one tiny index: 4 images, 3
classes, image 0 = {0, 1}, image 1 = {1}, image 2 = {}, image 3 = {2}.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff.core.class_index import ImageClassIndex
from mmdiff.core.diagnostics import sampling_diagnostics
from mmdiff.core.frequency import frequency_groups, frequency_of_counts
from mmdiff.core.repeat_factors import (instance_repeat_factors,
                                        lvis_repeat_factors)
from mmdiff.core.weights import (SCHEMES, check_image_difficulty,
                                 sampling_weights)

INDEX = ImageClassIndex.from_lists([[0, 1], [1], [], [2]], 3)
D = [1.0, 2.0, 3.0, 4.0]
R2 = math.sqrt(2)


def test_uniform():
    expected = [0.25] * 4
    np.testing.assert_array_equal(sampling_weights('uniform', INDEX), expected)
    # Difficulty is validated but does not change the prior.
    np.testing.assert_array_equal(
        sampling_weights('uniform', INDEX, D), expected)


def test_paper():
    np.testing.assert_allclose(
        sampling_weights('paper', INDEX, D), [0.1, 0.2, 0.3, 0.4], rtol=1e-15)


def test_class_aware_prior():
    # C = 3 classes with images; p_i = sum over classes of i 1 / (3 n_c):
    # image 0: 1/3 * 1/1 + 1/3 * 1/2, image 1: 1/3 * 1/2, image 3: 1/3.
    np.testing.assert_allclose(
        sampling_weights('class_aware', INDEX), [1 / 2, 1 / 6, 0, 1 / 3],
        rtol=1e-15)


def test_class_aware_difficulty():
    # class 0 = {0}: image 0 gets 1/3; class 1 = {0, 1}, total D 3:
    # image 0 gets 1/3 * 1/3, image 1 1/3 * 2/3; class 2 = {3}: 1/3.
    np.testing.assert_allclose(
        sampling_weights('class_aware', INDEX, D), [4 / 9, 2 / 9, 0, 1 / 3],
        rtol=1e-15)


def test_class_aware_skips_classes_with_zero_difficulty():
    # Class 2's only image has D = 0: classes 0 and 1 are drawn, each 1/2.
    probs = sampling_weights('class_aware', INDEX, [1, 1, 5, 0])
    np.testing.assert_allclose(probs, [3 / 4, 1 / 4, 0, 0], rtol=1e-15)


def test_class_aware_without_any_label():
    index = ImageClassIndex.from_lists([[], []], 2)
    with pytest.raises(ValueError, match='class label'):
        sampling_weights('class_aware', index)


def test_repeat_factors_by_hand():
    # thr 0.5: f = (1/4, 2/4, 1/4), r(c) = (sqrt 2, 1, sqrt 2).
    np.testing.assert_allclose(
        lvis_repeat_factors(INDEX, 0.5), [R2, 1, 1, R2], rtol=1e-15)
    # The default thr 0.001 over-samples nothing here.
    np.testing.assert_array_equal(lvis_repeat_factors(INDEX), [1] * 4)


def _repeat_factors_like_mmengine(lists, thr):
    """The loop of mmengine's ClassBalancedDataset._get_repeat_factors."""
    freq = {}
    for labels in lists:
        for cat in set(labels):
            freq[cat] = freq.get(cat, 0) + 1
    repeat = {
        cat: max(1.0, math.sqrt(thr / (n / len(lists))))
        for cat, n in freq.items()
    }
    return [
        max(repeat[cat] for cat in set(labels)) if labels else 1.0
        for labels in lists
    ]


@settings(database=None, max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 9), max_size=5), min_size=1, max_size=40),
    st.sampled_from([0.001, 0.1, 0.3, 0.9]))
def test_repeat_factors_match_mmengine_loop(lists, thr):
    index = ImageClassIndex.from_lists(lists, 10)
    np.testing.assert_allclose(
        lvis_repeat_factors(index, thr),
        _repeat_factors_like_mmengine(lists, thr),
        rtol=1e-15)


# IRFS on 5 images, thr 0.5. Objects per image (class of each object):
#   0: 0 0 0   1: 0 1   2: 1   3: 2 2   4: (none)
# Images per class (2, 2, 1) of N = 5, objects per class (4, 2, 2) of 8:
#   f_i = (.4, .4, .2), f_b = (.5, .25, .25)
#   sqrt(f_i f_b) = (sqrt .2, sqrt .1, sqrt .05)
#   r(c) = sqrt(.5 / that) = (sqrt(.5 / sqrt .2), sqrt(.5 / sqrt .1),
#                             sqrt(.5 / sqrt .05)), all > 1
# RFS instead: r(c) = sqrt(.5 / f_i) = (sqrt 1.25, sqrt 1.25, sqrt 2.5).
IRFS_OBJECTS = [[0, 0, 0], [0, 1], [1], [2, 2], []]


def test_instance_repeat_factors_by_hand():
    index = ImageClassIndex.from_lists(IRFS_OBJECTS, 3)
    r0, r1, r2 = (math.sqrt(0.5 / math.sqrt(f)) for f in (0.2, 0.1, 0.05))
    np.testing.assert_allclose(
        instance_repeat_factors(index, [4, 2, 2], 0.5), [r0, r1, r1, r2, 1],
        rtol=1e-15)
    rfs = math.sqrt(1.25)
    np.testing.assert_allclose(
        lvis_repeat_factors(index, 0.5),
        [rfs, rfs, rfs, math.sqrt(2.5), 1],
        rtol=1e-15)
    # One object in every image: f_b = f_i, IRFS is RFS.
    single = ImageClassIndex.from_lists([[0], [1], [0], [2]], 3)
    np.testing.assert_allclose(
        instance_repeat_factors(single, single.images_per_class(), 0.5),
        lvis_repeat_factors(single, 0.5),
        rtol=1e-15)
    with pytest.raises(ValueError, match='one count per class'):
        instance_repeat_factors(index, [4, 2], 0.5)
    with pytest.raises(
            ValueError, match='class 0 has 1 objects but '
            'appears in 2 images'):
        instance_repeat_factors(index, [1, 2, 2], 0.5)


def _irfs_like_loops(objects, thr):
    """IRFS one class and one image at a time."""
    n = len(objects)
    images, boxes = {}, {}
    for labels in objects:
        for cat in labels:
            boxes[cat] = boxes.get(cat, 0) + 1
        for cat in set(labels):
            images[cat] = images.get(cat, 0) + 1
    total = sum(boxes.values())
    repeat = {
        cat:
        max(1.0,
            math.sqrt(thr / math.sqrt(images[cat] / n * boxes[cat] / total)))
        for cat in images
    }
    return [
        max(repeat[cat] for cat in labels) if labels else 1.0
        for labels in objects
    ]


@settings(database=None, max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 9), max_size=6), min_size=1, max_size=40),
    st.sampled_from([0.001, 0.1, 0.3, 0.9]))
def test_instance_repeat_factors_match_loops(objects, thr):
    index = ImageClassIndex.from_lists(objects, 10)
    counts = np.bincount([c for labels in objects for c in labels],
                         minlength=10)
    np.testing.assert_allclose(
        instance_repeat_factors(index, counts, thr),
        _irfs_like_loops(objects, thr),
        rtol=1e-14)


def test_instance_repeat_factor_scheme():
    index = ImageClassIndex.from_lists(IRFS_OBJECTS, 3)
    factors = instance_repeat_factors(index, [4, 2, 2], 0.5)
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(
        sampling_weights(
            'instance_repeat_factor',
            index,
            d,
            thr=0.5,
            beta=2.0,
            instances_per_class=[4, 2, 2]),
        factors * d**2 / (factors * d**2).sum(),
        rtol=1e-15)
    with pytest.raises(ValueError, match='needs instances_per_class'):
        sampling_weights('instance_repeat_factor', index, thr=0.5)


def test_repeat_factor_scheme():
    total = 2 + 2 * R2
    np.testing.assert_allclose(
        sampling_weights('repeat_factor', INDEX, thr=0.5),
        np.array([R2, 1, 1, R2]) / total,
        rtol=1e-15)
    w = np.array([R2 * 1, 1 * 4, 1 * 9, R2 * 16])
    np.testing.assert_allclose(
        sampling_weights('repeat_factor', INDEX, D, thr=0.5, beta=2.0),
        w / w.sum(),
        rtol=1e-15)
    # beta 0 ignores difficulty.
    np.testing.assert_allclose(
        sampling_weights('repeat_factor', INDEX, D, thr=0.5, beta=0.0),
        np.array([R2, 1, 1, R2]) / total,
        rtol=1e-15)


def test_temperature():
    w = np.sqrt(D)
    np.testing.assert_allclose(
        sampling_weights('paper', INDEX, D, temperature=2.0),
        w / w.sum(),
        rtol=1e-15)


def test_floor_and_clip_by_hand():
    # mean 1/4, floor 0.5 -> >= 1/8, clip 2 -> <= 1/2. Images 1 and 3 hit
    # the bounds (1/8, 1/2); images 0 and 2 share 3/8 as 1:3, which puts
    # image 0 at 3/32 < 1/8, so it is floored too and image 2 gets 1/4.
    probs = sampling_weights(
        'paper', INDEX, [1, 0, 3, 100], floor=0.5, clip=2.0)
    np.testing.assert_allclose(probs, [1 / 8, 1 / 8, 1 / 4, 1 / 2], rtol=1e-12)


def test_floor_keeps_class_aware_support():
    # Image 2 has no class: the floor does not lift it, and the mean is
    # over the 3 drawable images.
    probs = sampling_weights('class_aware', INDEX, [1, 100, 1, 1], floor=0.9)
    assert probs[2] == 0
    assert probs[[0, 1, 3]].min() >= 0.9 / 3 - 1e-12
    assert probs.sum() == pytest.approx(1, abs=1e-12)


def test_clip_too_tight_warns():
    with pytest.warns(UserWarning, match='cannot hold'):
        probs = sampling_weights('paper', INDEX, [1, 0, 0, 0], clip=2.0)
    np.testing.assert_allclose(probs, [1, 0, 0, 0])


@settings(database=None, max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.just(0.0), st.floats(1e-6, 1e3)), min_size=2,
        max_size=50).filter(any), st.one_of(st.none(), st.floats(0, 1)),
    st.one_of(st.none(), st.floats(1, 50)))
def test_floor_and_clip_bounds_hold(weights, floor, clip):
    n = len(weights)
    index = ImageClassIndex.from_lists([[0]] * n, 1)
    zeros = n - np.count_nonzero(weights)
    if clip is not None and (n - zeros) * clip + zeros * (floor or 0) < n:
        return  # infeasible: covered by the warning test
    probs = sampling_weights('paper', index, weights, floor=floor, clip=clip)
    assert probs.sum() == pytest.approx(1, abs=1e-12)
    if floor is not None:
        assert probs.min() >= floor / n * (1 - 1e-9)
    if clip is not None:
        assert probs.max() <= clip / n * (1 + 1e-9)
    # Order is kept: a larger weight never gets a smaller probability.
    order = np.argsort(weights, kind='stable')
    assert np.all(np.diff(probs[order]) >= -1e-15)


def _instances(index: ImageClassIndex) -> dict:
    """Object counts for IRFS: two objects per image of each class."""
    return dict(instances_per_class=2 * index.images_per_class())


@st.composite
def _index_and_value(draw):
    lists = draw(
        st.lists(
            st.lists(st.integers(0, 5), max_size=4), min_size=1, max_size=30))
    if not any(lists):
        lists[0] = [0]
    value = draw(st.floats(1e-6, 1e6))
    return ImageClassIndex.from_lists(lists, 6), value


@settings(database=None, max_examples=60, deadline=None)
@given(_index_and_value(), st.sampled_from(SCHEMES),
       st.sampled_from([0.001, 0.2]), st.sampled_from([1.0, 3.0]))
def test_equal_difficulty_is_the_prior_exactly(case, scheme, thr, temp):
    index, value = case
    opts = dict(thr=thr, temperature=temp, **_instances(index))
    prior = sampling_weights(scheme, index, **opts)
    equal = sampling_weights(scheme, index, [value] * index.num_images, **opts)
    np.testing.assert_array_equal(equal, prior)
    assert prior.sum() == pytest.approx(1, abs=1e-12)
    assert np.all(prior >= 0)


@settings(database=None, max_examples=60, deadline=None)
@given(_index_and_value(), st.sampled_from(SCHEMES), st.data())
def test_scale_invariance(case, scheme, data):
    index, value = case
    difficulty = np.array(
        data.draw(
            st.lists(
                st.floats(0.01, 100),
                min_size=index.num_images,
                max_size=index.num_images)))
    np.testing.assert_allclose(
        sampling_weights(scheme, index, difficulty, **_instances(index)),
        sampling_weights(scheme, index, difficulty * value,
                         **_instances(index)),
        rtol=1e-9,
        atol=1e-15)


@pytest.mark.parametrize(
    'values, match', [([1, float('nan'), 1, 1], 'non-finite.*image 1 = nan'),
                      ([1, 1, float('inf'), 1], 'non-finite.*image 2 = inf'),
                      ([1, -0.5, 1, 1], 'negative.*image 1 = -0.5'),
                      ([0, 0, 0, 0], 'all zero.*pass None'),
                      ([1, 1, 1], r'shape \(3,\).*4 images'),
                      ([[1, 1, 1, 1]], r'shape \(1, 4\)'),
                      (['a', 'b', 'c', 'd'], 'must be numbers')])
def test_bad_difficulty(values, match):
    with pytest.raises(ValueError, match='image_difficulty .*' + match):
        sampling_weights('paper', INDEX, values)


def test_check_image_difficulty_names_the_values():
    with pytest.raises(ValueError, match='weights of epoch 3 is all zero'):
        check_image_difficulty([0, 0], 2, 'weights of epoch 3')
    out = check_image_difficulty(np.array([1, 2]), 2)
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    'kwargs, match',
    [(dict(scheme='balanced'), "scheme must be one of.*'balanced'"),
     (dict(beta=-1.0), 'beta .* got -1.0'), (dict(thr=0.0), 'thr .* got 0.0'),
     (dict(temperature=0), 'temperature .* got 0'),
     (dict(floor=1.5), 'floor .* got 1.5'),
     (dict(floor=-0.1), 'floor .* got -0.1'),
     (dict(clip=0.5), 'clip .* got 0.5'),
     (dict(clip=float('inf')), 'clip .* got inf'),
     (dict(beta=True), 'beta .* got True')])
def test_bad_scheme_args(kwargs, match):
    kwargs = dict(dict(scheme='repeat_factor'), **kwargs)
    scheme = kwargs.pop('scheme')
    with pytest.raises(ValueError, match=match):
        sampling_weights(scheme, INDEX, **kwargs)


def test_frequency_of_counts_is_lvis_definition():
    # LVIS: rare 1-10 training images, common 11-100, frequent > 100
    counts = [1, 10, 11, 100, 101, 5000]
    assert frequency_of_counts(counts).tolist() == [0, 0, 1, 1, 2, 2]
    assert frequency_of_counts(counts, (5, 200)).tolist() == [0, 1, 1, 1, 1, 2]
    with pytest.raises(ValueError, match='increasing'):
        frequency_of_counts(counts, (100, 10))


def test_frequency_groups():
    assert frequency_groups(['f', 'r', 'c']).tolist() == [2, 0, 1]
    # Rarest group among an image's classes; -1 without classes.
    groups = frequency_groups(['f', 'r', 'c'], INDEX)
    assert groups.tolist() == [0, 0, -1, 1]
    with pytest.raises(ValueError, match="unknown class frequency 'x'"):
        frequency_groups(['f', 'x', 'c'])


def test_diagnostics_uniform_and_point_mass():
    uniform = sampling_diagnostics([1, 1, 1, 1])
    assert uniform['ess'] == pytest.approx(4)
    assert uniform['ess_fraction'] == pytest.approx(1)
    assert uniform['max_prob_ratio'] == pytest.approx(1)
    assert uniform['expected_max_repeats'] == pytest.approx(1)
    assert uniform['expected_fraction_not_drawn'] == pytest.approx(0.75**4)
    point = sampling_diagnostics([0, 0, 1, 0], num_draws=10)
    assert point['ess'] == pytest.approx(1)
    assert point['support'] == 1
    assert point['expected_max_repeats'] == pytest.approx(10)
    assert point['expected_fraction_not_drawn'] == pytest.approx(0.75)


def test_diagnostics_of_a_draw_with_groups():
    out = sampling_diagnostics([0.125, 0.125, 0.25, 0.5], [0, 0, 1, 3],
                               groups=[0, 1, -1, 2],
                               group_names=('r', 'c', 'f'))
    assert out['num_draws'] == 4
    assert out['max_repeats'] == 2
    assert out['fraction_not_drawn'] == 0.25
    assert out['ess'] == pytest.approx(1 / (2 / 64 + 1 / 16 + 1 / 4))
    assert out['group_mass'] == pytest.approx(dict(r=0.125, c=0.125, f=0.5))
    assert out['group_draw_fraction'] == pytest.approx(
        dict(r=0.5, c=0.25, f=0.25))
    with pytest.raises(ValueError, match='drawn_indices'):
        sampling_diagnostics([1, 1], [2])
    with pytest.raises(ValueError, match='probs'):
        sampling_diagnostics([0, 0])


def test_image_groups_and_repeat_factors_from_counts_by_loops() -> None:
    from mmdiff.core.frequency import image_groups
    from mmdiff.core.repeat_factors import (lvis_repeat_factors,
                                            repeat_factors_from_counts)
    labels = [[2, 0], [], [1, 1, 2], [0]]
    index = ImageClassIndex.from_lists(labels, 3)
    class_groups = np.array([2, 0, 1])  # class 1 rare, 2 common, 0 frequent
    expected = [
        min(class_groups[c] for c in set(image)) if image else -1
        for image in labels
    ]
    assert image_groups(class_groups, index).tolist() == expected
    np.testing.assert_allclose(
        repeat_factors_from_counts(index, index.images_per_class(), 0.5),
        lvis_repeat_factors(index, 0.5))
    # counts from elsewhere: f(c) = count / images, r = max(1, sqrt(t / f))
    counts = [4, 1, 2]
    factors = []
    for image in labels:
        rs = [max(1.0, math.sqrt(0.5 / (counts[c] / 4))) for c in set(image)]
        factors.append(max(rs) if rs else 1.0)
    np.testing.assert_allclose(
        repeat_factors_from_counts(index, counts, 0.5), factors)
