"""What DifficultyHook logs after every epoch.

Scalars go to the logger, the message hub and the visualizer's backends
(TensorBoard when configured): D quantiles, mean D overall and per LVIS
frequency group, the objects observed so far, sampling mass per group,
the effective sample size, the most repeats of one image, the images not
drawn, objects updated, NaN predictions skipped and images reset.
"""
import logging
import os.path as osp
from typing import Any, Dict, Sequence

import numpy as np
from mmengine.logging import print_log

from mmdiff.core import LVIS_FREQUENCY_GROUPS

__all__ = ['epoch_scalars', 'log_epoch', 'dump_dir']


def dump_dir(runner: Any) -> str:
    """``<work_dir>/difficulty``, where the dumps go."""
    return osp.join(runner.work_dir, 'difficulty')


def epoch_scalars(inst_d: np.ndarray, object_groups: np.ndarray,
                  quantiles: Sequence[float], diag: Dict[str, Any],
                  **counts: float) -> Dict[str, float]:
    """The scalars of one epoch.

    Args:
        inst_d (np.ndarray): (M,) D of every object as the sampler uses it.
        object_groups (np.ndarray): (M,) LVIS group of every object.
        quantiles (Sequence[float]): Quantiles of D to log.
        diag (dict): The sampler's diagnostics.
        **counts: Further scalars, logged under ``difficulty/``.
    """
    scalars: Dict[str, float] = {}
    if inst_d.size:
        for q, v in zip(quantiles, np.quantile(inst_d, quantiles)):
            scalars[f'difficulty/D_q{q:g}'] = float(v)
        scalars['difficulty/D_mean'] = float(inst_d.mean())
        for g, name in enumerate(LVIS_FREQUENCY_GROUPS):
            if np.any(object_groups == g):
                scalars[f'difficulty/D_mean_{name}'] = float(
                    inst_d[object_groups == g].mean())
    scalars['sampler/ess_fraction'] = float(diag['ess_fraction'])
    if 'fraction_not_drawn' in diag:
        scalars['sampler/fraction_not_drawn'] = float(
            diag['fraction_not_drawn'])
        scalars['sampler/max_repeats'] = float(diag['max_repeats'])
    for name, mass in (diag.get('group_mass') or {}).items():
        scalars[f'sampler/mass_{name}'] = float(mass)
    for name, value in counts.items():
        scalars[f'difficulty/{name}'] = float(value)
    return scalars


def log_epoch(runner: Any, scalars: Dict[str, float], num_predictions: int,
              invalid: int) -> None:
    """Hand the scalars to mmengine; warn when predictions were skipped."""
    runner.visualizer.add_scalars(scalars, step=runner.epoch + 1)
    for key, value in scalars.items():
        runner.message_hub.update_info(key, value)
    text = ', '.join(f'{k.split("/")[1]}: {v:.4g}' for k, v in scalars.items())
    runner.logger.info(f'DifficultyHook epoch {runner.epoch + 1}: '
                       f'{num_predictions} GT predictions seen; {text}')
    if invalid:
        print_log(
            f'DifficultyHook skipped {invalid} predictions with NaN / inf '
            'probabilities this epoch (never added to the difficulty '
            'state); check the loss for divergence.',
            logger='current',
            level=logging.WARNING)
