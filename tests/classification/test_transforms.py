import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

from mmdiff.classification import (ClsDataSample, PackClsInputs, PadRandomCrop,
                                   RandomHorizontalFlip)


def _img(h=32, w=32):
    return (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)


def test_pad_random_crop_is_a_window_of_the_padded_image():
    np.random.seed(0)
    img = _img()
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
    crop = PadRandomCrop(32, padding=4)
    offsets = set()
    for _ in range(30):
        out = crop(dict(img=img.copy()))['img']
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        found = [(t, left) for t in range(9) for left in range(9)
                 if np.array_equal(padded[t:t + 32, left:left + 32], out)]
        assert found
        offsets.add(found[0])
    assert len(offsets) > 1


def test_pad_random_crop_without_padding_is_identity():
    img = _img()
    out = PadRandomCrop(32, padding=0)(dict(img=img))
    np.testing.assert_array_equal(out['img'], img)
    assert out['img_shape'] == (32, 32)
    with pytest.raises(ValueError):
        PadRandomCrop(40, padding=0)(dict(img=img))
    with pytest.raises(ValueError):
        PadRandomCrop(32, padding=-1)


def test_horizontal_flip():
    img = _img()
    out = RandomHorizontalFlip(prob=1.0)(dict(img=img))
    np.testing.assert_array_equal(out['img'], img[:, ::-1])
    assert out['flip'] is True
    out = RandomHorizontalFlip(prob=0.0)(dict(img=img))
    np.testing.assert_array_equal(out['img'], img)
    assert out['flip'] is False
    with pytest.raises(ValueError):
        RandomHorizontalFlip(prob=1.5)


def test_pack_keeps_sample_idx_and_label():
    img = _img()
    results = dict(
        img=img, gt_label=3, sample_idx=17, img_shape=(32, 32), extra=1)
    out = PackClsInputs()(results)
    assert set(out) == {'inputs', 'data_samples'}
    assert out['inputs'].shape == (3, 32, 32)
    assert out['inputs'].dtype == torch.uint8
    np.testing.assert_array_equal(out['inputs'].numpy(),
                                  img.transpose(2, 0, 1))
    sample = out['data_samples']
    assert isinstance(sample, ClsDataSample)
    assert sample.sample_idx == 17
    assert sample.gt_label.tolist() == [3]
    assert 'extra' not in sample.metainfo_keys()
    with pytest.raises(TypeError):
        PackClsInputs(meta_keys='sample_idx')


def test_transforms_build_from_registry_dicts():
    pipeline = Compose([
        dict(type='PadRandomCrop', size=32, padding=4),
        dict(type='RandomHorizontalFlip', prob=0.5),
        dict(type='PackClsInputs'),
    ])
    out = pipeline(dict(img=_img(), gt_label=1, sample_idx=0))
    assert out['data_samples'].sample_idx == 0
