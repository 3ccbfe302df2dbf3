"""A small synthetic LVIS v1 set, made on first use (tests, demo, evidence).

- :mod:`.spec`: the classes and their look; :mod:`.layout`: labels and
  boxes of every image; :mod:`.render`: drawing; :mod:`.write`: the image
  and annotation files; :mod:`.check`: its parameters; :mod:`.make`:
  ``make_synthetic_lvis`` / ``ensure_synthetic_lvis`` (and the command line,
  ``python -m mmdiff.datasets.synthetic.make``); :mod:`.dataset`:
  ``SyntheticLVISV1Dataset``, which makes the data when it is missing.
"""
from .dataset import SyntheticLVISV1Dataset
from .make import ensure_synthetic_lvis, make_synthetic_lvis
from .write import HARD_KEY

__all__ = [
    'SyntheticLVISV1Dataset', 'ensure_synthetic_lvis', 'make_synthetic_lvis',
    'HARD_KEY'
]
