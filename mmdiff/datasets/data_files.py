"""Check a config's data files before training starts.

mmdet only finds a missing annotation file deep inside dataset building,
with a stack trace that does not say where the file should be. The tools
call :func:`check_data_files` first and stop with the expected layout.

A dataset class can check its own files: a classmethod
``check_data_files(dataset_cfg)`` that raises ``FileNotFoundError`` with
the expected layout and where the data comes from (e.g.
:class:`~mmdiff.classification.CIFAR10LT`). Such datasets skip the generic
``data_root`` / ``ann_file`` check. A class attribute
``creates_data_files = True`` says the dataset makes missing files itself.
"""
import os.path as osp
from typing import (Any, Callable, Dict, Iterator, List, Mapping, Optional,
                    Tuple)

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

# [(split, dataset or evaluator type, path)]
MissingPaths = List[Tuple[str, str, str]]
# {message of a dataset's own check: [(split, dataset type)]}
OwnMessages = Dict[str, List[Tuple[str, str]]]


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


def _dataset_class(ds: Mapping) -> Any:
    """The class a dataset config builds (None when not registered)."""
    dataset_type = ds.get('type')
    if not isinstance(dataset_type, str):
        return dataset_type
    from mmengine.registry import DATASETS
    try:
        from mmdet.registry import DATASETS as DET_DATASETS
        return DET_DATASETS.get(dataset_type) or DATASETS.get(dataset_type)
    except ImportError:
        return DATASETS.get(dataset_type)


def _makes_own_files(ds: Mapping) -> bool:
    return getattr(_dataset_class(ds), 'creates_data_files', False)


def _own_check(ds: Mapping) -> Optional[Callable[[Mapping], None]]:
    check = getattr(_dataset_class(ds), 'check_data_files', None)
    return check if callable(check) else None


def _missing(cfg: Mapping) -> Tuple[MissingPaths, OwnMessages]:
    """Missing paths, and the messages of datasets that check themselves.

    Returns:
        tuple: ``[(split, type, path)]`` of the generic check and
        ``{message: [(split, type)]}`` of the datasets' own checks.
    """
    missing: MissingPaths = []
    own: OwnMessages = {}
    for split, ds in _dataset_cfgs(cfg):
        if _makes_own_files(ds):
            continue
        check = _own_check(ds)
        if check is not None:
            try:
                check(ds)
            except FileNotFoundError as err:
                own.setdefault(str(err), []).append(
                    (split, str(ds.get('type'))))
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
    return missing, own


def _evaluated_on_own_files(cfg: Mapping, evaluator: str) -> bool:
    loader = cfg.get(evaluator.replace('evaluator', 'dataloader')) or {}
    ds = loader.get('dataset') if isinstance(loader, Mapping) else None
    return isinstance(ds, Mapping) and _makes_own_files(ds)


def check_data_files(cfg: Mapping, splits: Optional[List[str]] = None) -> None:
    """Raise a clear error when a file the config reads is missing.

    Datasets whose class has a ``check_data_files(dataset_cfg)``
    classmethod are checked by it; the others by their ``data_root`` /
    ``ann_file`` (and evaluators by their ``ann_file``).

    Args:
        cfg (Mapping): the full config (``mmengine.Config`` or dict).
        splits (list[str], optional): keys to check, e.g.
            ``['test_dataloader', 'test_evaluator']``. Defaults to all.

    Raises:
        DataFilesNotFoundError: names every missing path, the expected
            directory tree and where the data comes from.
    """
    missing, own = _missing(cfg)
    missing = [m for m in missing if splits is None or m[0] in splits]
    for message in list(own):
        own[message] = [
            user for user in own[message]
            if splits is None or user[0] in splits
        ]
        if not own[message]:
            del own[message]
    if not missing and not own:
        return
    parts = ['Data files the config needs are missing:']
    # One message per dataset however many splits read it.
    for message, users in own.items():
        kinds = sorted({kind for _, kind in users})
        parts.append(f'  {", ".join(split for split, _ in users)} '
                     f'({", ".join(kinds)}):')
        parts.append(message.rstrip('\n'))
    if missing:
        parts.extend(f'  {split} ({kind}): {path}'
                     for split, kind, path in missing)
        is_lvis = any('lvis' in (kind + path).lower()
                      for _, kind, path in missing)
        if is_lvis:
            root = next((osp.dirname(osp.dirname(p)) or '.'
                         for _, _, p in missing if p.endswith('.json')),
                        'data/lvis_v1')
            parts.append(LVIS_LAYOUT.format(root=root.rstrip('/') + '/'))
        else:
            parts.append(GENERIC_LAYOUT)
    raise DataFilesNotFoundError('\n'.join(parts).rstrip('\n') + '\n')
