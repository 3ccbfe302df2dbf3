"""Long-tailed CIFAR-10 / CIFAR-100 over the standard python-pickle files.

The long-tailed profile is the exponential one of Cui et al., CVPR 2019
"Class-Balanced Loss Based on Effective Number of Samples" and Cao et al.,
NeurIPS 2019 "LDAM", used by Yu et al., CVPR 2022 (docs/method.md, "CIFAR-LT
data"): class ``i`` of ``C`` keeps ``floor(n_max * (1 / ratio) **
(i / (C - 1)))`` training images; the test split stays balanced.

The files are the "python version" archives of
https://www.cs.toronto.edu/~kriz/cifar.html, extracted under ``data/``::

    data/
    |-- cifar-10-batches-py/       # cifar-10-python.tar.gz
    |   |-- batches.meta
    |   |-- data_batch_1 ... data_batch_5
    |   `-- test_batch
    `-- cifar-100-python/          # cifar-100-python.tar.gz
        |-- meta
        |-- test
        `-- train

They are pickles (the format the CIFAR authors chose); load only files you
trust, as with any pickle.
"""
import os.path as osp
from numbers import Real
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.registry import DATASETS

from mmdiff.safe_load import load_pickle_data

CIFAR_URL = 'https://www.cs.toronto.edu/~kriz/cifar.html'
# The ratios of the CIFAR-LT benchmark (their table, docs/method.md; 10 is
# also common).
CIFAR_LT_RATIOS = (1, 10, 20, 50, 100)
_IMG_SHAPE = (32, 32, 3)


def cifar_lt_counts(num_classes: int, n_max: int, ratio: float) -> List[int]:
    """Per-class image counts of the exponential long-tailed profile.

    Class ``i`` keeps ``floor(n_max * (1 / ratio) ** (i / (C - 1)))``
    images (Cui et al. 2019; Cao et al. 2019, whose code computes exactly
    this expression, so the subset sizes match the literature: 12,406
    images for CIFAR-10 at ratio 100, 10,847 for CIFAR-100).

    Args:
        num_classes (int): Number of classes ``C`` (>= 1).
        n_max (int): Images of the most frequent class, class 0 (5000 for
            CIFAR-10, 500 for CIFAR-100).
        ratio (float): Imbalance ratio ``n_max / n_min`` (>= 1).

    Returns:
        list[int]: ``C`` counts, non-increasing, the first equal to
        ``n_max``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or num_classes < 1:
        raise ValueError(f'num_classes must be an int >= 1, got '
                         f'{num_classes!r}')
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f'n_max must be an int >= 1, got {n_max!r}')
    if isinstance(ratio, bool) or not isinstance(ratio, Real) \
            or not ratio >= 1:
        raise ValueError(f'ratio must be a number >= 1, got {ratio!r}')
    if num_classes == 1:
        return [n_max]
    # Same float expression as LDAM's get_img_num_per_cls, so that the
    # floor lands on the same integers.
    imb_factor = 1.0 / ratio
    return [
        int(n_max * imb_factor**(i / (num_classes - 1.0)))
        for i in range(num_classes)
    ]


def _load_pickle(path: str) -> dict:
    # The archives are pickles: read as data only (no code can run).
    return load_pickle_data(path, encoding='bytes')


class CIFARLTDataset(BaseDataset):
    """Base class of the long-tailed CIFAR data sets.

    Images are held once, in one uint8 array of the kept images; each data
    info is small (``img_index``, ``ori_index``, ``gt_label``) and
    :meth:`get_data_info` attaches a copy of the image, so serialising the
    data list for dataloader workers stays cheap. mmengine's
    ``BaseDataset.get_data_info`` adds ``sample_idx`` (the index in this
    data set), which :class:`PackClsInputs` keeps in the data sample's
    metainfo.

    Each data info passed to the pipeline has ``img`` (HWC uint8 RGB,
    32x32), ``gt_label`` (int), ``sample_idx`` (int), ``ori_index`` (int,
    the image's row in the original CIFAR split), ``img_shape`` and
    ``ori_shape``.

    Args:
        data_root (str, optional): Directory holding the extracted CIFAR
            files. Defaults to the class's ``DEFAULT_DATA_ROOT``.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        imbalance_ratio (float): One of ``CIFAR_LT_RATIOS`` (1, 10, 20, 50,
            100); 1 keeps the balanced set. Ignored for the test split,
            which stays balanced. Defaults to 1.
        seed (int): Chooses which images of each class are kept. Class
            ``c`` keeps the first ``n_c`` images of a permutation drawn from
            ``numpy.random.default_rng([seed, c])``, so the choice does not
            depend on the ratio and subsets are nested (ratio 100 is a
            subset of ratio 50 at the same seed). Defaults to 0.
        n_max (int, optional): Images of class 0 in the long-tailed split.
            Defaults to None: the smallest per-class count of the full
            training split (5000 for CIFAR-10, 500 for CIFAR-100).
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ().
        metainfo (dict, optional): Overrides the meta information; by
            default ``classes`` holds the label names of the meta file.
        **kwargs: Other arguments of mmengine's ``BaseDataset``
            (``test_mode``, ``indices``, ``serialize_data``, ``lazy_init``,
            ``max_refetch``).
    """

    DEFAULT_DATA_ROOT: str = ''
    TRAIN_FILES: Sequence[str] = ()
    TEST_FILES: Sequence[str] = ()
    META_FILE: str = ''
    LABEL_KEY: bytes = b''
    NAMES_KEY: bytes = b''
    ARCHIVE: str = ''
    NAME: str = ''

    def __init__(self,
                 data_root: Optional[str] = None,
                 split: str = 'train',
                 imbalance_ratio: float = 1,
                 seed: int = 0,
                 n_max: Optional[int] = None,
                 pipeline: Sequence = (),
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got "
                             f'{split!r}')
        if isinstance(imbalance_ratio, bool) or \
                imbalance_ratio not in CIFAR_LT_RATIOS:
            raise ValueError(f'imbalance_ratio must be one of '
                             f'{CIFAR_LT_RATIOS}, got {imbalance_ratio!r}')
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f'seed must be an int >= 0, got {seed!r}')
        if n_max is not None and (isinstance(n_max, bool)
                                  or not isinstance(n_max, int) or n_max < 1):
            raise ValueError(f'n_max must be None or an int >= 1, got '
                             f'{n_max!r}')
        for key in ('ann_file', 'data_prefix'):
            if key in kwargs:
                raise TypeError(f'{type(self).__name__} reads the CIFAR '
                                f'files under data_root; {key!r} is not '
                                'used')
        self.split = split
        self.imbalance_ratio = imbalance_ratio
        self.seed = seed
        self.n_max = n_max
        data_root = self.DEFAULT_DATA_ROOT if data_root is None \
            else data_root
        self._check_files(data_root)
        meta = _load_pickle(osp.join(data_root, self.META_FILE))
        merged = dict(classes=tuple(n.decode() for n in meta[self.NAMES_KEY]))
        merged.update(metainfo or {})
        self._images = np.empty((0, ) + _IMG_SHAPE, dtype=np.uint8)
        self._gt_labels: Optional[np.ndarray] = None
        super().__init__(
            ann_file='',
            metainfo=merged,
            data_root=data_root,
            pipeline=list(pipeline),
            **kwargs)

    @classmethod
    def _check_files(cls, data_root: str) -> None:
        files = [*cls.TRAIN_FILES, *cls.TEST_FILES, cls.META_FILE]
        missing = [f for f in files if not osp.isfile(osp.join(data_root, f))]
        if not missing:
            return
        tree = '\n'.join(f'        {f}' for f in sorted(files))
        raise FileNotFoundError(
            f'{cls.NAME} files not found under {data_root!r} (missing: '
            f'{", ".join(missing)}). Expected:\n'
            f'    {data_root}/\n{tree}\n'
            f'Download the "{cls.NAME} python version" archive '
            f'({cls.ARCHIVE}) from {CIFAR_URL} and extract it under data/ '
            f'(tar -xzf {cls.ARCHIVE} -C data/), or set data_root to the '
            'extracted directory.')

    @classmethod
    def check_data_files(cls, dataset_cfg: Mapping) -> None:
        """Check the files a dataset config would read, without loading.

        :func:`mmdiff.datasets.check_data_files` (called by the tools
        before the Runner is built) uses it, so a missing download stops
        with the expected layout instead of a stack trace.

        Args:
            dataset_cfg (Mapping): The dataset's config (``data_root``
                optional, as in ``__init__``).

        Raises:
            FileNotFoundError: Lists the missing files, the expected
                layout and where CIFAR comes from.
        """
        data_root = dataset_cfg.get('data_root')
        if data_root is None:
            data_root = cls.DEFAULT_DATA_ROOT
        cls._check_files(data_root)

    def _read_split(self) -> tuple:
        files = self.TRAIN_FILES if self.split == 'train' \
            else self.TEST_FILES
        datas, labels = [], []
        for name in files:
            entry = _load_pickle(osp.join(self.data_root, name))
            datas.append(np.asarray(entry[b'data'], dtype=np.uint8))
            labels.append(np.asarray(entry[self.LABEL_KEY], dtype=np.int64))
        return np.concatenate(datas), np.concatenate(labels)

    def _long_tailed_indices(self, labels: np.ndarray) -> np.ndarray:
        num_classes = len(self._metainfo['classes'])
        available = np.bincount(labels, minlength=num_classes)
        n_max = int(available.min()) if self.n_max is None else self.n_max
        counts = cifar_lt_counts(num_classes, n_max, self.imbalance_ratio)
        short = [(c, n, int(available[c])) for c, n in enumerate(counts)
                 if n > available[c]]
        if short:
            raise ValueError(
                f'n_max={n_max} asks for more images than the split has '
                '(class, wanted, available): '
                f'{short[:5]}{" ..." if len(short) > 5 else ""}')
        kept = []
        for c, n in enumerate(counts):
            # A per-class generator keyed by (seed, class) makes the choice
            # independent of the ratio (nested subsets) and of the global
            # RNG (STYLE.md guideline 7).
            rng = np.random.default_rng([self.seed, c])
            kept.append(rng.permutation(np.flatnonzero(labels == c))[:n])
        return np.sort(np.concatenate(kept))

    def load_data_list(self) -> List[dict]:
        """Read the split and keep the long-tailed subset.

        Returns:
            list[dict]: One ``dict(img_index, ori_index, gt_label)`` per
            kept image, in the order of the original files.
        """
        data, labels = self._read_split()
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f'{self.NAME} data must be (N, 3072) uint8, got '
                             f'shape {data.shape}')
        num_classes = len(self._metainfo['classes'])
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'{self.NAME} labels must lie in '
                             f'[0, {num_classes}), got range '
                             f'[{labels.min()}, {labels.max()}]')
        if self.split == 'train':
            keep = self._long_tailed_indices(labels)
        else:
            keep = np.arange(labels.size)
        # Rows are CHW flattened; the pipeline works on HWC like mmcv.
        chw = data[keep].reshape(-1, 3, 32, 32)
        self._images = np.ascontiguousarray(chw.transpose(0, 2, 3, 1))
        self._gt_labels = None
        return [
            dict(img_index=i, ori_index=int(k), gt_label=int(labels[k]))
            for i, k in enumerate(keep)
        ]

    def get_data_info(self, idx: int) -> dict:
        """Data info of one image, with the image attached.

        Args:
            idx (int): Index in this data set.

        Returns:
            dict: ``img``, ``gt_label``, ``sample_idx``, ``ori_index``,
            ``img_index``, ``img_shape``, ``ori_shape``.
        """
        info = super().get_data_info(idx)
        # A copy, so an in-place transform cannot corrupt the store.
        info['img'] = self._images[info['img_index']].copy()
        info['img_shape'] = info['ori_shape'] = _IMG_SHAPE[:2]
        return info

    def get_gt_labels(self) -> np.ndarray:
        """Labels of all images, in data set order.

        Returns:
            np.ndarray: int64 array of shape (len(self),).
        """
        if self._gt_labels is None or self._gt_labels.size != len(self):
            self._gt_labels = np.array([
                BaseDataset.get_data_info(self, i)['gt_label']
                for i in range(len(self))
            ],
                                       dtype=np.int64)
        return self._gt_labels

    def get_cat_ids(self, idx: int) -> List[int]:
        """Category of one image, as a one-element list (mmengine API).

        Args:
            idx (int): Index in this data set.

        Returns:
            list[int]: ``[gt_label]``.
        """
        return [int(self.get_gt_labels()[idx])]

    def get_class_counts(self) -> np.ndarray:
        """Number of images of each class in this data set.

        Returns:
            np.ndarray: int64 array of shape (num_classes,).
        """
        return np.bincount(
            self.get_gt_labels(), minlength=len(self._metainfo['classes']))

    def get_subset_(self, indices: Any) -> None:
        """See mmengine's ``BaseDataset.get_subset_``."""
        super().get_subset_(indices)
        self._gt_labels = None

    def get_subset(self, indices: Any) -> 'BaseDataset':
        """See mmengine's ``BaseDataset.get_subset``."""
        subset = super().get_subset(indices)
        subset._gt_labels = None
        return subset


@DATASETS.register_module()
class CIFAR10LT(CIFARLTDataset):
    """Long-tailed CIFAR-10 (see :class:`CIFARLTDataset` for the args).

    Defaults to ``data_root='data/cifar-10-batches-py'``.
    """

    DEFAULT_DATA_ROOT = 'data/cifar-10-batches-py'
    TRAIN_FILES = tuple(f'data_batch_{i}' for i in range(1, 6))
    TEST_FILES = ('test_batch', )
    META_FILE = 'batches.meta'
    LABEL_KEY = b'labels'
    NAMES_KEY = b'label_names'
    ARCHIVE = 'cifar-10-python.tar.gz'
    NAME = 'CIFAR-10'


@DATASETS.register_module()
class CIFAR100LT(CIFARLTDataset):
    """Long-tailed CIFAR-100, fine labels (see :class:`CIFARLTDataset`).

    Defaults to ``data_root='data/cifar-100-python'``.
    """

    DEFAULT_DATA_ROOT = 'data/cifar-100-python'
    TRAIN_FILES = ('train', )
    TEST_FILES = ('test', )
    META_FILE = 'meta'
    LABEL_KEY = b'fine_labels'
    NAMES_KEY = b'fine_label_names'
    ARCHIVE = 'cifar-100-python.tar.gz'
    NAME = 'CIFAR-100'
