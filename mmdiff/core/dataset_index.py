"""One index of a training set: images, their objects, and how to draw them.

Shapes: ``S`` sampler indices (the length of the dataset as the sampler
sees it, wrappers included), ``M`` unique images, ``E`` annotated objects,
``K`` classes.

The sampler draws sampler indices; the difficulty belongs to objects of
unique images. The two differ under mmengine's ``RepeatDataset`` (several
sampler indices show one image) and ``ConcatDataset`` (each part numbers
its images from 0). :class:`DatasetIndex` holds both views, built in one
walk of the dataset (:func:`mmdiff.datasets.index_dataset`), so the sampler
and the hook cannot disagree about which objects an image has.

Objects are laid out image after image: the objects of unique image ``m``
are ``object_offsets[m]:object_offsets[m + 1]``, in annotation order. An
object is *kept* when it is not ignored (mmdet moves ignored objects out of
``gt_instances``, so a GT index after the pipeline counts kept objects
only); the class prior counts every object, as mmdet's ``get_cat_ids`` and
mmengine's ``ClassBalancedDataset`` do.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from .class_index import ImageClassIndex
from .validation import check_int

__all__ = ['DatasetIndex']


def _int_array(value: Sequence[int], name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or (array.size and array.dtype.kind not in 'iu'):
        raise ValueError(f'{name} must be a 1-D integer array, got dtype '
                         f'{array.dtype} and shape {array.shape}')
    return array.astype(np.int64, copy=False)


def _take_rows(offsets: np.ndarray, values: np.ndarray,
               rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of a CSR array: their values in order, and counts."""
    counts = np.diff(offsets)[rows]
    out_starts = np.cumsum(counts) - counts
    # Output position p of row r reads offsets[r] + (p - out_starts[r]).
    shift = np.repeat(offsets[:-1][rows] - out_starts, counts)
    return values[np.arange(int(counts.sum())) + shift], counts


class DatasetIndex:
    """Images, objects and sampler indices of a training set.

    Args:
        image_of_index (Sequence[int]): ``(S,)`` unique image of every
            sampler index, in ``[0, M)``.
        object_offsets (Sequence[int]): ``(M + 1,)`` CSR offsets of the
            objects of every unique image.
        object_labels (Sequence[int]): ``(E,)`` 0-based class of every
            object.
        num_classes (int): Number of classes ``K``.
        ignored (Sequence[bool], optional): ``(E,)`` objects mmdet ignores
            (``ignore_flag``). Defaults to None (none ignored).
        img_ids (Sequence[int], optional): ``(M,)`` annotation-file image
            ids, -1 where unknown. Defaults to None (all -1).
        img_paths (Sequence[str], optional): ``(M,)`` image files, '' where
            unknown. Defaults to None (all '').
        classes (Sequence[str], optional): ``(K,)`` class names.
            Defaults to None.
        object_boxes (Sequence, optional): ``(E, 4)`` boxes (x1, y1, x2,
            y2) in original image coordinates, for plots. Defaults to None
            (zeros).

    Example:
        >>> # two images, the second shown twice (RepeatDataset-like)
        >>> index = DatasetIndex([0, 1, 1], [0, 2, 3], [4, 0, 4], 5)
        >>> index.num_indices, index.num_images, index.num_objects
        (3, 2, 3)
        >>> index.class_index().labels_of(2).tolist()
        [4]
    """

    def __init__(self,
                 image_of_index: Sequence[int],
                 object_offsets: Sequence[int],
                 object_labels: Sequence[int],
                 num_classes: int,
                 ignored: Optional[Sequence[bool]] = None,
                 img_ids: Optional[Sequence[int]] = None,
                 img_paths: Optional[Sequence[str]] = None,
                 classes: Optional[Sequence[str]] = None,
                 object_boxes: Optional[Sequence] = None) -> None:
        self.num_classes = check_int(num_classes, 'num_classes', 1)
        self.image_of_index = _int_array(image_of_index, 'image_of_index')
        self.object_offsets = _int_array(object_offsets, 'object_offsets')
        self.object_labels = _int_array(object_labels, 'object_labels')
        offsets, labels = self.object_offsets, self.object_labels
        if offsets.size < 1 or offsets[0] != 0 or \
                offsets[-1] != labels.size or np.any(np.diff(offsets) < 0):
            raise ValueError('object_offsets must rise from 0 to '
                             f'len(object_labels) = {labels.size}')
        num_images = offsets.size - 1
        if self.image_of_index.size and (self.image_of_index.min() < 0
                                         or self.image_of_index.max()
                                         >= num_images):
            raise ValueError(
                f'image_of_index must lie in [0, {num_images}), the '
                'unique images given by object_offsets')
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            bad = int(
                np.flatnonzero((labels < 0)
                               | (labels >= num_classes))[0])
            image = int(np.searchsorted(offsets, bad, 'right') - 1)
            raise ValueError(
                f'image {image} has class label {labels[bad]}, outside '
                f'[0, {num_classes}); labels must be 0-based class indices '
                '(not category ids)')
        self.ignored = (
            np.zeros(labels.size, dtype=bool)
            if ignored is None else np.asarray(ignored, dtype=bool))
        if self.ignored.shape != labels.shape:
            raise ValueError('ignored must have one flag per object')
        self.img_ids = (
            np.full(num_images, -1, dtype=np.int64)
            if img_ids is None else _int_array(img_ids, 'img_ids'))
        self.img_paths = np.asarray(
            [''] * num_images if img_paths is None else list(img_paths),
            dtype=object)
        if self.img_ids.shape != (num_images, ) or \
                self.img_paths.shape != (num_images, ):
            raise ValueError(
                f'img_ids and img_paths need one entry per unique image '
                f'({num_images})')
        self.classes = None if classes is None else tuple(classes)
        self.object_boxes = (
            np.zeros(
                (labels.size, 4), dtype=np.float32) if object_boxes is None
            else np.asarray(object_boxes, dtype=np.float32).reshape(-1, 4))
        if self.object_boxes.shape[0] != labels.size:
            raise ValueError('object_boxes must have one box per object')

    @property
    def num_indices(self) -> int:
        """int: Sampler indices ``S`` (the dataset's length)."""
        return int(self.image_of_index.size)

    @property
    def num_images(self) -> int:
        """int: Unique images ``M``."""
        return int(self.object_offsets.size - 1)

    @property
    def num_objects(self) -> int:
        """int: Kept (not ignored) objects, the difficulty's instances."""
        return int((~self.ignored).sum())

    def class_index(self) -> ImageClassIndex:
        """Classes of every sampler index (ignored objects included).

        Returns:
            ImageClassIndex: One row per sampler index.
        """
        labels, counts = _take_rows(self.object_offsets, self.object_labels,
                                    self.image_of_index)
        return ImageClassIndex.from_flat(labels, counts, self.num_classes)

    def instances_per_class(self) -> np.ndarray:
        """Objects of each class over the sampler's indices (not images).

        Counted like :meth:`class_index` (ignored objects included, an
        image repeated by RepeatDataset once per copy), so that the
        instance frequencies of IRFS and the image frequencies of RFS come
        from the same rows. :meth:`images_per_class`, for LVIS's r / c / f
        groups, counts unique images instead.

        Returns:
            np.ndarray: ``(K,)`` int64.
        """
        labels, _ = _take_rows(self.object_offsets, self.object_labels,
                               self.image_of_index)
        return np.bincount(labels, minlength=self.num_classes).astype(np.int64)

    def images_per_class(self) -> np.ndarray:
        """Unique images that contain each class (ignored objects too).

        Under RepeatDataset an image counts once, as in its annotation file
        (LVIS's r / c / f groups count training images).

        Returns:
            np.ndarray: ``(K,)`` int64.
        """
        return ImageClassIndex.from_flat(self.object_labels,
                                         np.diff(self.object_offsets),
                                         self.num_classes).images_per_class()

    def kept_counts(self) -> np.ndarray:
        """Kept objects of every unique image.

        Returns:
            np.ndarray: ``(M,)`` int64.
        """
        image = np.repeat(
            np.arange(self.num_images), np.diff(self.object_offsets))
        return np.bincount(
            image[~self.ignored], minlength=self.num_images).astype(np.int64)

    def kept_labels(self) -> np.ndarray:
        """Classes of the kept objects, image after image.

        Returns:
            np.ndarray: ``(num_objects,)`` int64.
        """
        return self.object_labels[~self.ignored]

    def first_index_of_image(self) -> np.ndarray:
        """The first sampler index showing each unique image.

        Returns:
            np.ndarray: ``(M,)`` int64, -1 for images no index shows.
        """
        first = np.full(self.num_images, -1, dtype=np.int64)
        order = np.arange(self.num_indices)[::-1]
        first[self.image_of_index[::-1]] = order
        return first

    def per_index(self, image_values: np.ndarray) -> np.ndarray:
        """Spread one value per unique image to every sampler index.

        Args:
            image_values (np.ndarray): ``(M,)`` values.

        Returns:
            np.ndarray: ``(S,)`` values.
        """
        image_values = np.asarray(image_values)
        if image_values.shape[:1] != (self.num_images, ):
            raise ValueError(
                f'expected one value per unique image ({self.num_images}), '
                f'got shape {image_values.shape}')
        return image_values[self.image_of_index]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_indices={self.num_indices}, '
                f'num_images={self.num_images}, '
                f'num_objects={self.num_objects}, '
                f'num_classes={self.num_classes})')
