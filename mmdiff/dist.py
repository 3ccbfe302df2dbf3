"""Multi-process launches on machines without CUDA (gloo on the CPU).

mmengine 0.10.7 cannot run ``--launcher pytorch`` on a CPU-only machine:
its ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` before it
opens the process group, and its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``, which torch rejects for a CPU module. The
``Runner`` skips ``init_dist`` when a process group is already open, so
:func:`prepare_cpu_launch` opens a gloo group itself and sets a DDP wrapper
without ``device_ids``. ``tools/train.py`` and ``tools/test.py`` call it;
with CUDA, or with ``--launcher none``, it does nothing.
"""
import datetime
import os
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

__all__ = ['prepare_cpu_launch']

#: What torchrun (``tools/dist_train.sh``) sets for every rank.
_TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def prepare_cpu_launch(cfg: Any) -> bool:
    """Open a gloo process group for ``cfg.launcher`` when CUDA is absent.

    Args:
        cfg (mmengine.Config): The run's config; ``launcher``,
            ``env_cfg.dist_cfg`` (``timeout`` in seconds is kept; the
            backend becomes gloo) and ``model_wrapper_cfg`` (its
            ``device_ids`` become None) are read and updated in place.

    Returns:
        bool: Whether this prepared a CPU launch (False with CUDA or
        ``launcher='none'``).

    Raises:
        RuntimeError: For a launcher other than ``'pytorch'`` without CUDA,
            or when torchrun's environment variables are missing.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA GPUs, and this machine has '
            'none. On CPUs, start the processes with torchrun: '
            '`bash tools/dist_train.sh CONFIG NUM_PROCESSES` (--launcher '
            'pytorch), or train in one process with --launcher none.')
    missing = [key for key in _TORCHRUN_ENV if key not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher pytorch needs {", ".join(missing)} in the '
            'environment, which torchrun sets for each process: start it '
            'with `bash tools/dist_train.sh CONFIG NUM_PROCESSES` (or '
            'tools/dist_test.sh), or use --launcher none.')
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        print_log(
            f'no CUDA: the processes talk through gloo, not {backend}',
            logger='current')
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            'gloo',
            init_method='env://',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    wrapper = dict(
        cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False)))
    wrapper_type = MODEL_WRAPPERS.get(wrapper['type'])
    if wrapper_type is not None and issubclass(wrapper_type,
                                               DistributedDataParallel):
        # The Runner's default is [LOCAL_RANK]: a GPU, not this CPU.
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True
