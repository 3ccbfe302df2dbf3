"""Small classification experiments that check the method against the paper.

``tools/reproduce_evidence.py`` runs them and writes ``docs/results.md``:

- :mod:`.digits`: the paper's long-tailed MNIST task (even vs odd digits
  with sub-class imbalance) on scikit-learn's bundled 8x8 digits, MLP.
- :mod:`.tabular`: logistic regression on bundled tabular sets, as the
  paper's UCI table.

Both train with :func:`.training.train_classifier`, whose difficulty
re-sampling uses :mod:`mmdiff.core` (no mmengine / mmdet needed).
"""
from .training import (METHOD_LABELS, METHODS, TrainConfig, TrainResult,
                       class_balanced_weights, train_classifier)

__all__ = [
    'METHODS', 'METHOD_LABELS', 'TrainConfig', 'TrainResult',
    'class_balanced_weights', 'train_classifier'
]
