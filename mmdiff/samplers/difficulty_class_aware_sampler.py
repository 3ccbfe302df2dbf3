"""Sampler that re-draws the training images each epoch by difficulty.

The weights come from :func:`mmdiff.core.sampling_weights`; this module only
reads the dataset's labels once, keeps the current probabilities and draws
(docs/design.md, decisions 6 and 7).
"""
import logging
import math
import warnings
from typing import Dict, Iterator, Optional, Sequence, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from mmdiff.core.class_index import ImageClassIndex
from mmdiff.core.diagnostics import sampling_diagnostics
from mmdiff.core.frequency import LVIS_FREQUENCY_GROUPS
from mmdiff.core.validation import check_int
from mmdiff.core.weights import (check_image_difficulty, check_scheme_args,
                                 dataset_sampling_weights)
from mmdiff.datasets.dataset_walk import index_dataset
from mmdiff.datasets.sample_idx import install_global_sample_idx

__all__ = ['DifficultyClassAwareSampler', 'dataset_class_index']


def dataset_class_index(dataset: Sized) -> ImageClassIndex:
    """Build the sampler-index -> class index of a dataset.

    Labels come from one walk of the dataset
    (:func:`mmdiff.datasets.index_dataset`): ``get_gt_labels()`` for
    classification sets (one label per image), else the instances of
    ``get_data_info(idx)`` (mmdet: their ``bbox_label``, ignored objects
    included as in ``get_cat_ids``) or ``get_cat_ids(idx)``. mmengine's
    ``ConcatDataset`` and ``RepeatDataset`` are unwrapped. The number of
    classes is ``len(dataset.metainfo['classes'])`` when the metainfo has
    classes, else the largest label + 1.

    Args:
        dataset (Sized): The training dataset.

    Returns:
        ImageClassIndex: Classes of every dataset index.

    Raises:
        TypeError: If the dataset offers no labels.
    """
    return index_dataset(dataset).class_index()


def _images_per_epoch(images_per_epoch: Optional[int],
                      num_samples: Optional[int]) -> Optional[int]:
    if num_samples is not None:
        if images_per_epoch is not None:
            raise ValueError('give images_per_epoch only (num_samples is its '
                             'deprecated name)')
        warnings.warn(
            'DifficultyClassAwareSampler(num_samples=...) is deprecated: it '
            'is images_per_epoch (over all ranks); the attribute num_samples '
            "is this rank's share, as in mmengine", DeprecationWarning)
        images_per_epoch = num_samples
    if images_per_epoch is None:
        return None
    return check_int(images_per_epoch, 'images_per_epoch', 1)


@DATA_SAMPLERS.register_module()
class DifficultyClassAwareSampler(Sampler):
    """Draws each epoch's images with replacement, weighted by difficulty.

    Every epoch, the global list of ``total_size`` indices is drawn with
    ``torch.multinomial`` (with replacement) from the current per-image
    probabilities by a ``torch.Generator`` seeded with ``seed + epoch``, so
    the order is a pure function of (seed, epoch, probabilities) for a
    given torch version; rank ``r`` of ``W`` yields
    ``indices[r:total_size:W]``. Until :meth:`set_difficulty` or
    :meth:`set_weights` is called, and during the first ``warmup_epochs``
    epochs, images are drawn from the scheme's prior (difficulty all
    equal): uniform (``'uniform'`` / ``'paper'``), mmdet's
    ``ClassAwareSampler`` distribution (``'class_aware'``), LVIS repeat
    factors (``'repeat_factor'``) or instance-aware repeat factors
    (``'instance_repeat_factor'``, IRFS); see :mod:`mmdiff.core.weights`.

    New probabilities take effect at the next ``__iter__``: the DataLoader
    iterates its sampler in the main process at the start of every epoch,
    also with ``persistent_workers=True``.

    Args:
        dataset (Sized): The dataset. It must give per-image class labels
            through ``get_cat_ids(idx)`` or ``get_gt_labels()``.
        seed (int, optional): Seed shared by all ranks. None draws one and
            broadcasts it (``mmengine.dist.sync_random_seed``).
            Defaults to None.
        scheme (str): One of :data:`mmdiff.core.SCHEMES` (what each draws:
            :mod:`mmdiff.core.weights`). Defaults to ``'repeat_factor'``.
        beta (float): Exponent of difficulty in the repeat-factor schemes.
            Defaults to 1.0.
        thr (float): Repeat-factor threshold t (both repeat-factor
            schemes). Defaults to 0.001.
        temperature (float): Difficulty ``D`` becomes ``D ** (1 / T)``.
            Defaults to 1.0.
        floor (float, optional): Minimum probability as a fraction of the
            mean. Defaults to None.
        clip (float, optional): Maximum probability as a multiple of the
            mean. Defaults to None.
        images_per_epoch (int, optional): Images drawn per epoch over all
            ranks, rounded up to a multiple of the world size. Defaults to
            None (``len(dataset)``). The attribute :attr:`num_samples` is,
            as in mmengine's samplers, this rank's share (``len(self)``).
        num_samples (int, optional): Deprecated name of
            ``images_per_epoch``.
        warmup_epochs (int): Number of first epochs (0-based epochs
            ``< warmup_epochs``) drawn from the prior even when a
            difficulty is known. Defaults to 0.
    """

    def __init__(self,
                 dataset: Sized,
                 seed: Optional[int] = None,
                 scheme: str = 'repeat_factor',
                 beta: float = 1.0,
                 thr: float = 0.001,
                 temperature: float = 1.0,
                 floor: Optional[float] = None,
                 clip: Optional[float] = None,
                 images_per_epoch: Optional[int] = None,
                 warmup_epochs: int = 0,
                 num_samples: Optional[int] = None) -> None:
        check_scheme_args(scheme, beta, thr, temperature, floor, clip)
        images_per_epoch = _images_per_epoch(images_per_epoch, num_samples)
        warmup_epochs = check_int(warmup_epochs, 'warmup_epochs', 0)
        if seed is not None:
            seed = check_int(seed, 'seed', -2**63)
        if len(dataset) == 0:
            raise ValueError('the dataset is empty; nothing to sample')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.scheme = scheme
        # The arguments of core.sampling_weights besides the difficulty.
        self.weight_options = dict(
            beta=beta,
            thr=thr,
            temperature=temperature,
            floor=floor,
            clip=clip)
        self.warmup_epochs = warmup_epochs

        # One walk, shared with DifficultyHook (sampler.dataset_index).
        self.dataset_index = index_dataset(dataset)
        self.class_index = self.dataset_index.class_index()
        # The hook names images by sample_idx: make it global under
        # ConcatDataset (before the dataloader starts its workers).
        install_global_sample_idx(dataset)
        total = len(dataset) if images_per_epoch is None else images_per_epoch
        self.images_per_epoch = total
        self.num_samples = math.ceil(total / self.world_size)
        self.total_size = self.num_samples * self.world_size

        self.prior = self._weights(None)
        self._set(None, None, None, 'prior')
        # Set by DifficultyHook (LVIS r / c / f) or by set_groups().
        self.groups: Optional[np.ndarray] = None
        self.group_names: Sequence[str] = LVIS_FREQUENCY_GROUPS
        self._last_epoch: Optional[int] = None
        self._last_probs: Optional[np.ndarray] = None
        self._last_indices: Optional[torch.Tensor] = None

    def _weights(self, difficulty: Optional[np.ndarray]) -> np.ndarray:
        return dataset_sampling_weights(self.scheme, self.dataset_index,
                                        difficulty, **self.weight_options)

    @property
    def probabilities(self) -> np.ndarray:
        """np.ndarray: ``(N,)`` probabilities the next ``__iter__`` uses
        (the one of :attr:`epoch`)."""
        return self.probabilities_for(self.epoch)

    def probabilities_for(self, epoch: int) -> np.ndarray:
        """``(N,)`` probabilities the draw of 0-based ``epoch`` uses.

        The prior during the first ``warmup_epochs`` epochs and until
        weights are set; the set weights after.
        """
        if self._probs is None or epoch < self.warmup_epochs:
            return self.prior
        return self._probs

    def set_difficulty(self,
                       image_difficulty: Sequence[float],
                       epoch: Optional[int] = None) -> None:
        """Set the per-image difficulty; used from the next ``__iter__``.

        Args:
            image_difficulty (Sequence[float]): ``(N,)`` difficulty of every
                dataset index, finite, >= 0, not all zero.
            epoch (int, optional): The epoch it was measured in, for error
                messages and the state. Defaults to None.
        """
        values = self._checked(image_difficulty, 'image_difficulty', epoch)
        self._set(self._weights(values), values, epoch, 'difficulty')

    def set_weights(self,
                    weights: Sequence[float],
                    epoch: Optional[int] = None) -> None:
        """Set per-image sampling weights directly (normalised here).

        The scheme, temperature, floor and clip are not applied.

        Args:
            weights (Sequence[float]): ``(N,)`` weights, finite, >= 0, not
                all zero.
            epoch (int, optional): The epoch they belong to, for error
                messages and the state. Defaults to None.
        """
        values = self._checked(weights, 'weights', epoch)
        self._set(values / values.sum(), None, epoch, 'weights')

    def _checked(self, values: Sequence[float], name: str,
                 epoch: Optional[int]) -> np.ndarray:
        where = '' if epoch is None else f' of epoch {epoch}'
        return check_image_difficulty(values, self.class_index.num_images,
                                      f'{name}{where}')

    def _set(self, probs: Optional[np.ndarray],
             difficulty: Optional[np.ndarray], epoch: Optional[int],
             set_by: str) -> None:
        """The probabilities of the next epochs, and where they came from."""
        self._probs = probs
        self.image_difficulty = difficulty
        self.difficulty_epoch = epoch
        self._set_by = set_by

    def set_groups(self,
                   groups: Sequence[int],
                   names: Sequence[str] = LVIS_FREQUENCY_GROUPS) -> None:
        """Set a group per image for :meth:`diagnostics` (e.g. LVIS r/c/f).

        Args:
            groups (Sequence[int]): ``(N,)`` group id per image, -1 for
                none (see :func:`mmdiff.core.frequency_groups`).
            names (Sequence[str]): Name of each group id.
                Defaults to ``('r', 'c', 'f')``.
        """
        groups = np.asarray(groups, dtype=np.int64)
        if groups.shape != (self.class_index.num_images, ):
            raise ValueError(
                f'groups must have one id per image, shape '
                f'({self.class_index.num_images},), got {groups.shape}')
        if groups.size and groups.max() >= len(names):
            raise ValueError(f'groups has id {groups.max()} but only '
                             f'{len(names)} names {tuple(names)}')
        self.groups = groups
        self.group_names = tuple(names)

    def _draw(self) -> torch.Tensor:
        """The global list of ``total_size`` indices of this epoch."""
        probs = self.probabilities
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        indices = torch.multinomial(
            torch.from_numpy(probs),
            self.total_size,
            replacement=True,
            generator=generator)
        self._last_epoch = self.epoch
        self._last_probs = probs
        self._last_indices = indices
        return indices

    @property
    def last_indices(self) -> Optional[torch.Tensor]:
        """A copy of the global list of dataset indices drawn for the last
        epoch (all ranks, before sharding); None before the first draw."""
        indices = self._last_indices
        return None if indices is None else indices.clone()

    def __iter__(self) -> Iterator[int]:
        """Iterate this rank's shard of the epoch's global list."""
        indices = self._draw()
        return iter(indices[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        """The number of samples in this rank."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; it seeds the next draw (``seed + epoch``).

        Args:
            epoch (int): Epoch number.
        """
        self.epoch = epoch

    def diagnostics(self) -> Dict[str, object]:
        """Diagnostics of the last drawn epoch.

        Before the first draw, those of the next epoch's probabilities
        without realised values.

        Returns:
            dict: :func:`mmdiff.core.sampling_diagnostics` of the last
            epoch's probabilities and global list, with group masses when
            groups are known, plus ``epoch`` and ``scheme``.
        """
        probs = self._last_probs
        indices = self._last_indices
        epoch = self._last_epoch
        if probs is None:
            probs, epoch = self.probabilities, self.epoch
        out = sampling_diagnostics(
            probs,
            drawn_indices=None if indices is None else indices.numpy(),
            groups=self.groups,
            group_names=None if self.groups is None else self.group_names,
            num_draws=self.total_size)
        out.update(epoch=epoch, scheme=self.scheme)
        return out

    def _config(self) -> dict:
        return dict(
            scheme=self.scheme,
            **self.weight_options,
            warmup_epochs=self.warmup_epochs,
            total_size=self.total_size)

    def state_dict(self) -> dict:
        """The sampler's state: plain python values and float64 tensors.

        Returns:
            dict: ``seed``, ``epoch``, ``num_images``, ``config``,
            ``set_by`` (``'prior'``, ``'difficulty'`` or ``'weights'``),
            ``difficulty_epoch`` and ``values`` (the difficulty or the
            weights, a tensor, or None).
        """
        values: Optional[np.ndarray] = None
        if self._set_by == 'difficulty':
            values = self.image_difficulty
        elif self._set_by == 'weights':
            values = self._probs
        return dict(
            seed=self.seed,
            epoch=self.epoch,
            num_images=self.class_index.num_images,
            config=self._config(),
            set_by=self._set_by,
            difficulty_epoch=self.difficulty_epoch,
            values=None if values is None else torch.from_numpy(values.copy()))

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore :meth:`state_dict`; recomputes the probabilities.

        The seed and epoch are restored so that a resumed run draws what
        an uninterrupted one would. A scheme configuration that differs
        from the checkpoint's is kept as configured now, with a warning.

        Args:
            state_dict (dict): From :meth:`state_dict`.
        """
        num_images = state_dict['num_images']
        if num_images != self.class_index.num_images:
            raise ValueError(
                f'the sampler state is for {num_images} images but the '
                f'dataset has {self.class_index.num_images}; load a '
                'checkpoint trained on this dataset')
        if state_dict['config'] != self._config():
            print_log(
                'DifficultyClassAwareSampler: the checkpoint sampled with '
                f"{state_dict['config']}, this run with {self._config()}; "
                'the configured values are used',
                logger='current',
                level=logging.WARNING)
        self.seed = int(state_dict['seed'])
        self.epoch = int(state_dict['epoch'])
        values = state_dict['values']
        values = None if values is None else np.asarray(values)
        epoch = state_dict['difficulty_epoch']
        if state_dict['set_by'] == 'difficulty':
            self.set_difficulty(values, epoch)
        elif state_dict['set_by'] == 'weights':
            self.set_weights(values, epoch)
        else:
            self._set(None, None, None, 'prior')
