"""mmdet dataset over the synthetic long-tailed LVIS v1 data (demo, tests).

It is mmdet's ``LVISV1Dataset`` that first makes the files with
:func:`~mmdiff.datasets.ensure_synthetic_lvis` when they are missing, so the
demo runs on a fresh machine without any download.
"""
from typing import Any, Optional

from mmdet.datasets import LVISV1Dataset
from mmdet.registry import DATASETS
from mmengine.dist import barrier, get_dist_info

from .make import ensure_synthetic_lvis

__all__ = ['SyntheticLVISV1Dataset']


@DATASETS.register_module()
class SyntheticLVISV1Dataset(LVISV1Dataset):
    """``LVISV1Dataset`` on synthetic data made on first use.

    Args:
        synthetic (dict, optional): Keyword arguments of
            :func:`~mmdiff.datasets.make_synthetic_lvis` (seed, sizes,
            number of classes, ...). The files under ``data_root`` are
            reused when they were made with the same arguments.
            Defaults to None (the generator's defaults).
        **kwargs: As for ``LVISV1Dataset``; ``data_root`` is where the
            synthetic data lives.
    """

    # Tells the tools' data-file check that missing files are made here.
    creates_data_files = True

    def __init__(self,
                 *args: Any,
                 synthetic: Optional[dict] = None,
                 **kwargs: Any) -> None:
        data_root = kwargs.get('data_root')
        if not data_root:
            raise ValueError('SyntheticLVISV1Dataset needs data_root: the '
                             'folder where the synthetic data is made')
        rank, world_size = get_dist_info()
        # One process writes; the others wait and then read.
        if rank == 0:
            ensure_synthetic_lvis(data_root, **(synthetic or {}))
        if world_size > 1:
            barrier()
        super().__init__(*args, **kwargs)
