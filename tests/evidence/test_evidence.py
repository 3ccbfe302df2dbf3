"""Tests of projects/evidence and tools/reproduce_evidence.py (fast, CPU).

Hand-computed cases for the class-balanced weights and the long-tailed
digits counts, properties of the construction, and tiny end-to-end runs
that check the report structure.
"""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

from projects.evidence.digits import (EVEN, GROUPS, ODD,
                                      LongTailedDigitsConfig,
                                      build_long_tailed, plot_digits,
                                      render_digits, run_digits,
                                      subclass_counts)
from projects.evidence.stats import mean_std
from projects.evidence.training import (METHODS, TrainConfig,
                                        class_balanced_weights,
                                        train_classifier)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = TrainConfig(epochs=2, batch_size=32, lr=1e-2)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def fake_digits(per_digit: int = 12) -> tuple:
    """Random 8x8 'images' in 0..16, ``per_digit`` of each digit."""
    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(10), per_digit)
    images = rng.integers(0, 17, size=(targets.size, 64)).astype(float)
    images[:, 0] = np.arange(targets.size)  # makes every image unique
    return images, targets


# ----------------------------------------------------------------------
# class-balanced loss weights (Cui et al., CVPR 2019)


def test_class_balanced_weights_hand_computed():
    # beta = 1/2: E_3 = (1 - 1/8) / (1/2) = 7/4, E_1 = (1 - 1/2) / (1/2) = 1.
    # Weights ∝ (4/7, 1), sum 11/7, normalised to K = 2: (8/11, 14/11).
    np.testing.assert_allclose(
        class_balanced_weights([3, 1], 0.5), [8 / 11, 14 / 11], rtol=1e-12)


def test_class_balanced_weights_three_classes():
    # beta = 0.9: E_1 = 1, E_2 = 1.9, E_10 = (1 - 0.9 ** 10) / 0.1.
    e10 = (1 - 0.9**10) / 0.1
    raw = np.array([1 / e10, 1 / 1.9, 1.0])
    np.testing.assert_allclose(
        class_balanced_weights([10, 2, 1], 0.9),
        3 * raw / raw.sum(),
        rtol=1e-12)


def test_class_balanced_weights_limits():
    np.testing.assert_array_equal(
        class_balanced_weights([90, 10], 0.0), [1.0, 1.0])
    # beta -> 1: inverse class frequency.
    np.testing.assert_allclose(
        class_balanced_weights([90, 10], 1 - 1e-9), [0.2, 1.8], rtol=1e-6)
    # An empty class gets no weight.
    weights = class_balanced_weights([5, 0, 5], 0.99)
    assert weights[1] == 0 and weights.sum() == pytest.approx(3)
    with pytest.raises(ValueError, match='beta'):
        class_balanced_weights([1, 2], 1.0)


# ----------------------------------------------------------------------
# long-tailed digits construction


def test_subclass_counts_default():
    counts = subclass_counts(LongTailedDigitsConfig())
    assert counts == {
        0: 2000,
        2: 100,
        4: 100,
        6: 100,
        8: 100,
        1: 100,
        3: 5,
        5: 5,
        7: 5,
        9: 5
    }


@pytest.mark.parametrize('r_c,r_s', [(20, 20), (10, 5), (4, 10)])
def test_subclass_counts_ratios(r_c, r_s):
    counts = subclass_counts(
        LongTailedDigitsConfig(
            n_max=4000, class_ratio=r_c, subclass_ratio=r_s))
    even = sum(counts[d] for d in EVEN)
    odd = sum(counts[d] for d in ODD)
    assert even / odd == pytest.approx(r_c)
    for major, minors in ((0, GROUPS['even_minor']), (1, GROUPS['odd_minor'])):
        for d in minors:
            assert counts[major] / counts[d] == pytest.approx(r_s)


def test_subclass_counts_too_small():
    with pytest.raises(ValueError, match='n_max'):
        subclass_counts(LongTailedDigitsConfig(n_max=100))


def test_build_long_tailed_composition():
    images, targets = fake_digits(per_digit=30)
    cfg = LongTailedDigitsConfig(
        n_max=80,
        class_ratio=4,
        subclass_ratio=4,
        test_per_digit=3,
        noise_std=0.5)
    task = build_long_tailed(cfg, 0, images, targets)
    counts = subclass_counts(cfg)  # 0: 80, even rare 20, 1: 20, odd rare 5
    np.testing.assert_array_equal(
        np.bincount(task.digit_train, minlength=10),
        [counts[d] for d in range(10)])
    assert (np.bincount(task.y_train)[0] /
            np.bincount(task.y_train)[1]) == pytest.approx(4)
    np.testing.assert_array_equal(task.y_train, task.digit_train % 2)
    # Balanced test set of held-out images.
    np.testing.assert_array_equal(np.bincount(task.digit_test), [3] * 10)
    test_src = set(
        np.flatnonzero(np.isin(images[:, 0], task.x_test[:, 0] * 16)))
    assert not test_src & set(task.source_train.tolist())
    # Digit 0 (80 > pool of 27) cycles: each pool image 2 or 3 times; the
    # others take distinct images.
    reuse = np.bincount(task.source_train[task.digit_train == 0])
    assert set(reuse[reuse > 0]) == {2, 3}
    for d in range(1, 10):
        src = task.source_train[task.digit_train == d]
        assert np.unique(src).size == src.size
    assert task.x_train.min() >= 0 and task.x_train.max() <= 1
    # Same seed, same task; the noise makes re-used images differ.
    again = build_long_tailed(cfg, 0, images, targets)
    np.testing.assert_array_equal(again.x_train, task.x_train)
    zero = task.x_train[task.digit_train == 0]
    assert np.unique(zero, axis=0).shape[0] == zero.shape[0]


def test_build_long_tailed_sklearn_default():
    pytest.importorskip('sklearn')
    task = build_long_tailed(LongTailedDigitsConfig(), 3)
    assert task.x_train.shape == (2520, 64)
    assert np.bincount(task.y_train).tolist() == [2400, 120]
    np.testing.assert_array_equal(np.bincount(task.digit_test), [50] * 10)


# ----------------------------------------------------------------------
# training loop


def test_train_classifier_masses():
    rng = np.random.default_rng(0)
    y = np.array([0] * 45 + [1] * 5)
    x = rng.normal(size=(50, 4)).astype(np.float32) + y[:, None]
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-2, cb_beta=0.9)
    results = {}
    for method in METHODS:
        torch.manual_seed(0)
        results[method] = train_classifier(
            torch.nn.Linear(4, 2), x, y, 2, method, cfg, seed=0)
        assert results[method].instance_mass.sum() == pytest.approx(1)
    np.testing.assert_allclose(results['base'].instance_mass, 1 / 50)
    cb = class_balanced_weights([45, 5], 0.9)
    assert results['class_balanced'].instance_mass[-1] / results[
        'class_balanced'].instance_mass[0] == pytest.approx(cb[1] / cb[0])
    dif = results['difficulty']
    assert len(dif.mass_history) == 3
    np.testing.assert_allclose(dif.mass_history[0], 1 / 50)
    assert dif.instance_mass is dif.mass_history[-1]
    assert dif.difficulty.shape == (50, ) and np.all(dif.difficulty > 0)
    assert results['base'].difficulty is None


def test_train_classifier_rejects_bad_method():
    with pytest.raises(ValueError, match='method'):
        train_classifier(
            torch.nn.Linear(2, 2), np.zeros((2, 2), np.float32),
            np.array([0, 1]), 2, 'focal', TINY, 0)


def test_mean_std():
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))
    assert mean_std([5.0]) == (5.0, 0.0)


# ----------------------------------------------------------------------
# tiny end-to-end runs and report structure


def test_digits_end_to_end(tmp_path):
    pytest.importorskip('sklearn')
    cfg = LongTailedDigitsConfig(n_max=100, class_ratio=5, subclass_ratio=5)
    result = run_digits(cfg, TINY, seeds=[0, 1], hidden=(16, ))
    records = result['records']
    assert len(records) == 2 * len(METHODS)
    for rec in records:
        for key in ('overall', 'even', 'odd', *GROUPS, 'class_ratio',
                    'subclass_ratio_odd', 'train_odd_minor'):
            assert np.isfinite(rec[key])
    base = [r for r in records if r['method'] == 'base'][0]
    assert base['class_ratio'] == pytest.approx(5)
    assert base['subclass_ratio_even'] == pytest.approx(5)
    dif = [r for r in records if r['method'] == 'difficulty'][0]
    assert len(dif['history_odd_minor_share']) == TINY.epochs
    figures = plot_digits(result, str(tmp_path))
    assert len(figures) == 3
    for name, _ in figures:
        assert (tmp_path / name).stat().st_size > 0
    text = render_digits(result, figures, 'figures')
    for heading in ('### Test accuracy', '### Paired difference',
                    '### Training composition'):
        assert heading in text
    # Tables and figures only: the conclusions are written by people.
    assert '### Reading' not in text
    assert text.count('| *paper (MNIST, MLP)') == len(METHODS)
    assert '| Difficulty re-sampling (ours) | ' in text


def test_tabular_end_to_end(tmp_path):
    pytest.importorskip('sklearn')
    from projects.evidence.tabular import (plot_tabular, render_tabular,
                                           run_tabular)
    result = run_tabular(['iris', 'breast_cancer'], TINY, seeds=[0, 1])
    assert len(result['records']) == 2 * 2 * len(METHODS)
    assert result['info']['iris']['class_counts'] == [50, 50, 50]
    assert result['info']['iris']['test_samples'] == 30
    figures = plot_tabular(result, str(tmp_path))
    text = render_tabular(result, figures, 'figures')
    rows = [line for line in text.splitlines() if line.startswith('| iris')]
    # Data set table, accuracy table, balanced / paired table.
    assert len(rows) == 3
    acc_row = rows[1].split(' | ')
    assert acc_row[-3:] == ['93.3', '93.3', '96.7 |']
    bc = [
        line for line in text.splitlines()
        if line.startswith('| breast_cancer')
    ][1]
    assert bc.count('n/a') == len(METHODS)


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'reproduce_evidence.py')
    spec = importlib.util.spec_from_file_location('reproduce_evidence', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_merge_keeps_other_sections_and_prose():
    tool = load_tool()
    assert [s.name for s in tool.SECTIONS] == [
        'digits', 'tabular', 'detection_curve', 'detection',
        'detection_variants', 'detection_harder', 'detection_steeper',
        'detection_summary', 'demo'
    ]
    first = tool.merge('', {'tabular': 'T1\n', 'digits': 'D1\n'})
    assert first.startswith(tool.TITLE)
    assert first.index('D1') < first.index('T1')
    # People write conclusions between the blocks.
    edited = first.replace(
        tool.END.format('digits') + '\n',
        tool.END.format('digits') + '\n\nOur reading of D1.\n')
    second = tool.merge(edited, {'tabular': 'T2\n', 'detection': 'X\n'})
    assert 'D1' in second and 'T2' in second and 'T1' not in second
    assert 'Our reading of D1.' in second
    assert second.index('D1') < second.index('Our reading') < second.index(
        'T2') < second.index('X')
    assert second.count(tool.BEGIN.format('digits')) == 1
    assert tool.merge(second, {}) == second


def test_tool_update_readme(tmp_path):
    tool = load_tool()
    readme = tmp_path / 'README.md'
    readme.write_text('intro\n<!-- results: demo begin -->\nold figure\n'
                      '<!-- results: demo end -->\nrest\n')
    assert tool.update_readme(
        str(readme), {
            'demo': 'new figure\n',
            'other': 'x'
        }) == ['other']
    assert readme.read_text() == (
        'intro\n<!-- results: demo begin -->\nnew figure\n'
        '<!-- results: demo end -->\nrest\n')
