"""Loading as data: checkpoints and data pickles build no code.

- :func:`load_checkpoint_file`: ``torch.save`` files, read by mmdiff's own
  zip reader and data-only pickle machine (never ``torch.load``).
- :func:`load_pickle_data`: the CIFAR archives, on the same machine.
- :func:`load_budget`: the resource budgets every load is held to.

What each name a file may spell resolves to is in
:mod:`mmdiff.safe_load.stand_ins` and :mod:`mmdiff.safe_load.torch_zip`;
the rules of the machine in :mod:`mmdiff.safe_load.unpickler`.
"""
from .budget import LoadBudget, current_budget, load_budget
from .checkpoint import (allow_checkpoint_types, checkpoint_allow_list,
                         load_checkpoint_file)
from .errors import DamagedCheckpointError, UnsafeCheckpointError
from .pickle_data import load_pickle_data

__all__ = [
    'load_checkpoint_file', 'load_pickle_data', 'allow_checkpoint_types',
    'checkpoint_allow_list', 'UnsafeCheckpointError', 'DamagedCheckpointError',
    'LoadBudget', 'load_budget', 'current_budget'
]
