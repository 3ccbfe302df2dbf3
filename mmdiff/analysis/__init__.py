"""Diagnostics of difficulty-aware re-sampling (plots of the hook dumps).

Not imported by ``import mmdiff``: it needs matplotlib, which training does
not.
"""
from .plots import (GalleryError, class_sampling_mass, find_dumps, load_dump,
                    match_dataset_images, plot_difficulty_dumps,
                    plot_difficulty_histograms, plot_difficulty_over_epochs,
                    plot_hardest_images, plot_sampling_mass,
                    repeat_factor_probs)

__all__ = [
    'GalleryError', 'find_dumps', 'load_dump', 'class_sampling_mass',
    'repeat_factor_probs', 'match_dataset_images',
    'plot_difficulty_histograms', 'plot_sampling_mass',
    'plot_difficulty_over_epochs', 'plot_hardest_images',
    'plot_difficulty_dumps'
]
