"""Loading as data: checkpoints and data pickles build no code.

- :func:`load_checkpoint_file`: ``torch.load(weights_only=True)`` with
  exact stand-ins for what mmengine checkpoints hold beyond torch's list.
- :func:`load_pickle_data`: the CIFAR archives, through the same stand-ins.

:mod:`mmdiff.safe_load.stand_ins` says what each stand-in accepts and why.
"""
from .checkpoint import (allow_checkpoint_types, checkpoint_allow_list,
                         load_checkpoint_file)
from .pickle_data import load_pickle_data
from .stand_ins import DamagedCheckpointError, UnsafeCheckpointError

__all__ = [
    'load_checkpoint_file', 'load_pickle_data', 'allow_checkpoint_types',
    'checkpoint_allow_list', 'UnsafeCheckpointError', 'DamagedCheckpointError'
]
