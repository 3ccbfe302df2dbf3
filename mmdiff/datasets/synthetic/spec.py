"""The classes of the synthetic LVIS set: a shape and a colour each.

Every class is a (shape, colour) pair, drawn as a filled polygon. A class's
*look-alike* is the class with the same shape in another colour: the hard
variants of a frequent class are drawn like it (:mod:`.synthetic_render`).
"""
from typing import Any, Dict, Tuple

import numpy as np

# Bump whenever the files written for given parameters change.
SYNTHETIC_LVIS_VERSION = 2  # 2: hard variants are look-alikes

__all__ = [
    'SYNTHETIC_LVIS_VERSION', 'SHAPES', 'COLOURS', 'MAX_CLASSES', 'class_spec',
    'lookalike_class', 'synthetic_lvis_classes', 'synthetic_lvis_metainfo',
    'unit_polygon', 'polygon_area', 'check_num_classes'
]

SHAPES = ('square', 'circle', 'triangle', 'diamond', 'cross', 'star')
COLOURS = (
    ('red', (230, 30, 30)),
    ('green', (30, 200, 40)),
    ('blue', (40, 70, 235)),
    ('yellow', (240, 220, 30)),
    ('magenta', (220, 40, 220)),
    ('cyan', (30, 215, 225)),
)
MAX_CLASSES = len(SHAPES) * len(COLOURS)

_CIRCLE_VERTICES = 16


def class_spec(index: int) -> Tuple[str, str, Tuple[int, int, int]]:
    """Shape, colour name and RGB of class ``index`` (0-based).

    Consecutive classes differ in shape and colour, so the head, the middle
    and the tail of the long tail each mix all shapes and colours. The map
    ``index -> (shape, colour)`` is injective on ``range(MAX_CLASSES)``.
    """
    n = len(SHAPES)
    shape = SHAPES[index % n]
    colour_name, rgb = COLOURS[(index // n + index) % len(COLOURS)]
    return shape, colour_name, rgb


def check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes,
                      int) or not (1 <= num_classes <= MAX_CLASSES):
        raise ValueError(f'num_classes must be an int in [1, {MAX_CLASSES}],'
                         f' got {num_classes!r}')


def synthetic_lvis_classes(num_classes: int = 20) -> Tuple[str, ...]:
    """Class names of the synthetic data set, in category-id order.

    Args:
        num_classes (int): Number of classes. Defaults to 20.

    Returns:
        tuple[str]: Names such as ``'red_square'``; name ``i`` is category
        id ``i + 1``.
    """
    check_num_classes(num_classes)
    names = []
    for i in range(num_classes):
        shape, colour, _ = class_spec(i)
        names.append(f'{colour}_{shape}')
    return tuple(names)


def synthetic_lvis_metainfo(num_classes: int = 20) -> Dict[str, Any]:
    """``metainfo`` for mmdet's ``LVISV1Dataset`` on the synthetic data.

    Args:
        num_classes (int): Number of classes. Defaults to 20.

    Returns:
        dict: ``classes`` (names in category-id order, as in the JSON files)
        and ``palette`` (each class's drawing colour).
    """
    classes = synthetic_lvis_classes(num_classes)
    palette = [class_spec(i)[2] for i in range(num_classes)]
    return dict(classes=classes, palette=palette)


def unit_polygon(shape: str) -> np.ndarray:
    """Vertices (N, 2) of ``shape`` inside the square [-1, 1]^2."""
    if shape == 'square':
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == 'circle':
        t = 2 * np.pi * np.arange(_CIRCLE_VERTICES) / _CIRCLE_VERTICES
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    elif shape == 'triangle':
        pts = [(0, -1), (1, 1), (-1, 1)]
    elif shape == 'diamond':
        pts = [(0, -1), (1, 0), (0, 1), (-1, 0)]
    elif shape == 'cross':
        a = 0.34
        pts = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1),
               (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]
    elif shape == 'star':
        t = -np.pi / 2 + np.pi * np.arange(10) / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
        # Stretch the star to fill the unit box vertically.
        pts[:, 1] = (pts[:, 1] - pts[:, 1].min()) / np.ptp(pts[:, 1]) * 2 - 1
        return pts
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return np.asarray(pts, dtype=np.float64)


def polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(
        abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def lookalike_class(index: int, num_classes: int) -> int:
    """The class whose colour a hard variant of ``index`` wears.

    Args:
        index (int): A class (0-based).
        num_classes (int): Number of classes.

    Returns:
        int: The class of the same shape in another colour (``index + 6``,
        or ``index - 6``) when there is one; else the next class (another
        shape and colour); ``index`` itself if it is the only class.
    """
    n = len(SHAPES)
    for other in (index + n, index - n):
        if 0 <= other < num_classes:
            return other
    return (index + 1) % num_classes
