"""Check a config's data files before training starts.

mmdet only finds a missing annotation file deep inside dataset building,
with a stack trace that does not say where the file should be. The tools
call :func:`check_data_files` first and stop with the expected layout.
"""
import os.path as osp
from typing import Any, Iterator, List, Mapping, Optional, Tuple

__all__ = ['DataFilesNotFoundError', 'check_data_files']

LVIS_LAYOUT = """\
Expected layout (as in mmdet's LVIS v1 configs):
  {root}
  ├── annotations/
  │   ├── lvis_v1_train.json
  │   └── lvis_v1_val.json
  ├── train2017/    (COCO 2017 train images)
  └── val2017/      (COCO 2017 val images)
LVIS v1 annotations: https://www.lvisdataset.org/dataset ; the images are
COCO 2017's: https://cocodataset.org/#download . Put them there or point the
config elsewhere, e.g.
  --cfg-options train_dataloader.dataset.data_root=/path/to/lvis_v1/ \\
      val_dataloader.dataset.data_root=/path/to/lvis_v1/ \\
      val_evaluator.ann_file=/path/to/lvis_v1/annotations/lvis_v1_val.json
To try mmdiff without LVIS, run the synthetic demo:
  python tools/train.py configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py
"""

GENERIC_LAYOUT = """\
Check data_root / ann_file / data_prefix of the dataset in the config, or
override them with --cfg-options.
"""


class DataFilesNotFoundError(FileNotFoundError):
    """A file or folder a config reads does not exist."""


def _dataset_cfgs(cfg: Mapping) -> Iterator[Tuple[str, Mapping]]:
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if not loader:
            continue
        stack: List[Any] = [loader.get('dataset')]
        while stack:
            ds = stack.pop()
            if not isinstance(ds, Mapping):
                continue
            yield split, ds
            # Dataset wrappers (ClassBalancedDataset, ConcatDataset, ...).
            stack.append(ds.get('dataset'))
            stack.extend(ds.get('datasets') or [])


def _join(root: Optional[str], path: Optional[str]) -> Optional[str]:
    if not path:
        return None
    if root and not osp.isabs(path) and '://' not in path:
        return osp.join(root, path)
    return path


def _makes_own_files(ds: Mapping) -> bool:
    dataset_type = ds.get('type')
    if not isinstance(dataset_type, str):
        return getattr(dataset_type, 'creates_data_files', False)
    from mmengine.registry import DATASETS
    try:
        from mmdet.registry import DATASETS as DET_DATASETS
        cls = DET_DATASETS.get(dataset_type) or DATASETS.get(dataset_type)
    except ImportError:
        cls = DATASETS.get(dataset_type)
    return getattr(cls, 'creates_data_files', False)


def _missing(cfg: Mapping) -> List[Tuple[str, str, str]]:
    missing = []
    for split, ds in _dataset_cfgs(cfg):
        if _makes_own_files(ds):
            continue
        root = ds.get('data_root')
        ann_file = _join(root, ds.get('ann_file'))
        if ann_file and '://' not in ann_file and not osp.isfile(ann_file):
            missing.append((split, str(ds.get('type')), ann_file))
        elif root and '://' not in root and not osp.isdir(root):
            missing.append((split, str(ds.get('type')), root))
    for split in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(split) or []
        if isinstance(evaluators, Mapping):
            evaluators = [evaluators]
        for ev in evaluators:
            ann_file = ev.get('ann_file') if isinstance(ev, Mapping) else None
            if ann_file and '://' not in ann_file and not osp.isfile(
                    ann_file) and not _evaluated_on_own_files(cfg, split):
                missing.append((split, str(ev.get('type')), ann_file))
    return missing


def _evaluated_on_own_files(cfg: Mapping, evaluator: str) -> bool:
    loader = cfg.get(evaluator.replace('evaluator', 'dataloader')) or {}
    ds = loader.get('dataset') if isinstance(loader, Mapping) else None
    return isinstance(ds, Mapping) and _makes_own_files(ds)


def check_data_files(cfg: Mapping, splits: Optional[List[str]] = None) -> None:
    """Raise a clear error when a file the config reads is missing.

    Args:
        cfg (Mapping): the full config (``mmengine.Config`` or dict).
        splits (list[str], optional): keys to check, e.g.
            ``['test_dataloader', 'test_evaluator']``. Defaults to all.

    Raises:
        DataFilesNotFoundError: names every missing path, the expected
            directory tree and where the data comes from.
    """
    missing = [m for m in _missing(cfg) if splits is None or m[0] in splits]
    if not missing:
        return
    lines = [f'  {split} ({kind}): {path}' for split, kind, path in missing]
    is_lvis = any('lvis' in (kind + path).lower() for _, kind, path in missing)
    if is_lvis:
        root = next((osp.dirname(osp.dirname(p)) or '.'
                     for _, _, p in missing if p.endswith('.json')),
                    'data/lvis_v1')
        layout = LVIS_LAYOUT.format(root=root.rstrip('/') + '/')
    else:
        layout = GENERIC_LAYOUT
    raise DataFilesNotFoundError('Data files the config needs are missing:\n' +
                                 '\n'.join(lines) + '\n' + layout)
