"""Diagnostics of difficulty-aware re-sampling: the hook's dumps, plotted.

- :mod:`.dump`: the file format (written by ``DifficultyHook``, read by
  the tools); numpy only.
- :mod:`.stats`: the numbers behind the plots; numpy only.
- :mod:`.figures` and :mod:`.report`: the figures (matplotlib, imported
  on use: ``import mmdiff`` does not need matplotlib).
"""
from .dump import find_dumps, load_dump, write_epoch, write_index
from .stats import class_sampling_mass, repeat_factor_probs

__all__ = [
    'find_dumps', 'load_dump', 'write_index', 'write_epoch',
    'class_sampling_mass', 'repeat_factor_probs'
]
