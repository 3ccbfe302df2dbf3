"""``sample_idx``: how a prediction names its training image.

mmengine's ``BaseDataset.get_data_info`` adds ``sample_idx`` (the index in
the dataset that loaded the image) to every sample; mmdet's
``PackDetInputs`` keeps it only when it is in ``meta_keys``. The capture
reads it from each data sample (:func:`sample_idx_of`), the hook checks
the pipelines keep it before training
(:func:`check_pipeline_keeps_sample_idx`), the eval pass adds it to its
pack transform (:func:`keep_sample_idx`), and under a ``ConcatDataset``
:func:`install_global_sample_idx` makes it global.
"""
import copy
from typing import Any, List, Sequence, Sized

from .dataset_walk import leaf_offsets

__all__ = [
    'SAMPLE_IDX', 'PACK_META_KEYS', 'SampleIdxMissingError', 'sample_idx_of',
    'check_pipeline_keeps_sample_idx', 'keep_sample_idx',
    'install_global_sample_idx'
]

SAMPLE_IDX = 'sample_idx'
#: The meta_keys to write in a train pipeline's PackDetInputs.
PACK_META_KEYS = ("meta_keys=('img_id', 'img_path', 'ori_shape', "
                  "'img_shape', 'scale_factor', 'flip', 'flip_direction', "
                  "'sample_idx')")


class SampleIdxMissingError(KeyError):
    """The data samples do not carry ``sample_idx``."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def sample_idx_of(data_sample: Any) -> int:
    """``sample_idx`` of a data sample, or a clear error saying the fix.

    Args:
        data_sample: An mmengine data sample.

    Returns:
        int: Its image's index.
    """
    meta = data_sample.metainfo
    if SAMPLE_IDX not in meta:
        raise SampleIdxMissingError(
            'DifficultyHook needs the dataset index of every training image '
            "('sample_idx'), but the data samples' metainfo has only "
            f'{sorted(meta)}. mmdet\'s PackDetInputs drops it unless it is '
            'in meta_keys: in the train pipeline use\n'
            f'    dict(type=\'PackDetInputs\', {PACK_META_KEYS})')
    return int(meta[SAMPLE_IDX])


def check_pipeline_keeps_sample_idx(dataset: Any,
                                    which: str = 'train pipeline') -> None:
    """Fail before training when a Pack transform drops ``sample_idx``.

    Every dataset that holds images is checked (the parts of a
    ConcatDataset / RepeatDataset included).

    Args:
        dataset: The (wrapped) dataset whose pipelines are checked.
        which (str): What the pipeline is, for the message. Defaults to
            'train pipeline'.

    Raises:
        SampleIdxMissingError: Naming the transform and the fix.
    """
    for leaf, _ in leaf_offsets(dataset):
        pipeline = getattr(leaf, 'pipeline', None)
        for transform in getattr(pipeline, 'transforms', []) or []:
            meta_keys = getattr(transform, 'meta_keys', None)
            name = type(transform).__name__
            if name.startswith('Pack') and meta_keys is not None and \
                    SAMPLE_IDX not in meta_keys:
                raise SampleIdxMissingError(
                    f'The {which}\'s {name} drops \'sample_idx\' (its '
                    f'meta_keys are {tuple(meta_keys)}), which DifficultyHook '
                    'needs to know which image each prediction belongs to. '
                    f'Add it to the {which}:\n'
                    f'    dict(type=\'{name}\', {PACK_META_KEYS})')


def keep_sample_idx(pipeline: Sequence[dict]) -> List[dict]:
    """A copy of a pipeline config whose pack transform keeps sample_idx.

    Args:
        pipeline (Sequence[dict]): Transform configs.

    Returns:
        list[dict]: The copy.
    """
    pipeline = [copy.deepcopy(dict(t)) for t in pipeline]
    pack = pipeline[-1] if pipeline else {}
    if str(pack.get('type', '')).startswith('Pack') and \
            'meta_keys' in pack and SAMPLE_IDX not in pack['meta_keys']:
        pack['meta_keys'] = tuple(pack['meta_keys']) + (SAMPLE_IDX, )
    return pipeline


class _GlobalSampleIdx:
    """``get_data_info`` of a ConcatDataset part, with a global index."""

    def __init__(self, dataset: Any, offset: int) -> None:
        self.dataset = dataset
        self.offset = offset

    def __call__(self, idx: int) -> dict:
        info = type(self.dataset).get_data_info(self.dataset, idx)
        if SAMPLE_IDX in info:
            info[SAMPLE_IDX] = int(info[SAMPLE_IDX]) + self.offset
        return info


def install_global_sample_idx(dataset: Sized) -> None:
    """Make ``sample_idx`` the global unique-image index (idempotent).

    Parts of a ConcatDataset after the first get an instance attribute
    ``get_data_info`` that shifts ``sample_idx`` by the part's offset;
    mmengine's ``BaseDataset.prepare_data`` reads it through
    ``self.get_data_info``. mmdet's classes are untouched, and the wrapper
    pickles, so it works with spawned dataloader workers. Call it before
    the dataloader starts its workers.

    Args:
        dataset (Sized): The training dataset, wrappers included.
    """
    for leaf, offset in leaf_offsets(dataset):
        if offset and callable(getattr(leaf, 'get_data_info', None)):
            leaf.__dict__['get_data_info'] = _GlobalSampleIdx(leaf, offset)
