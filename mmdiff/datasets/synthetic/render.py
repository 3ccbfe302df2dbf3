"""Drawing the synthetic LVIS images: shapes on textured backgrounds."""
from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .spec import class_spec, lookalike_class, polygon_area, unit_polygon

__all__ = ['render_image', 'Look']


class Look(NamedTuple):
    """How objects are drawn.

    Attributes:
        object_size (tuple[float, float]): Range of the nominal size.
        hard_colour_mix (float): Share of the look-alike's colour in a hard
            variant's colour (1: the look-alike's, 0: its own class's).
    """
    object_size: Tuple[float, float]
    hard_colour_mix: float = 1.0


#: Hard variants take sizes in the lowest part of the size range ...
HARD_SIZE_FRACTION = 0.4
#: ... and their hole is the outline scaled by this about its centre.
HOLE_SCALE = 0.55


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """A grey-ish, tinted, low-frequency textured background (float RGB)."""
    base = rng.uniform(80, 170) + rng.uniform(-15, 15, size=3)
    cells = rng.uniform(-1, 1, size=(height // 16 + 2, width // 16 + 2))
    low = Image.fromarray(((cells + 1) * 127.5).astype(np.uint8))
    low = np.asarray(
        low.resize(
            (width, height), Image.BILINEAR), dtype=np.float64) / 127.5 - 1
    img = base[None, None, :] + 28 * low[:, :, None]
    return img


def _place(rng: np.random.Generator,
           width: int,
           height: int,
           poly: np.ndarray,
           boxes: List[Tuple[float, float, float, float]],
           tries: int = 30) -> np.ndarray:
    """Translate a centred polygon into the image, avoiding other boxes.

    After ``tries`` failed attempts the last position is kept, so overlaps
    are rare but possible (as in real data).
    """
    lo, hi = poly.min(0), poly.max(0)
    pad = 2.0
    for _ in range(tries):
        cx = rng.uniform(pad - lo[0], width - pad - hi[0])
        cy = rng.uniform(pad - lo[1], height - pad - hi[1])
        x1, y1 = cx + lo[0], cy + lo[1]
        x2, y2 = cx + hi[0], cy + hi[1]
        if all(x1 >= bx2 + pad or x2 + pad <= bx1 or y1 >= by2 + pad or y2 +
               pad <= by1 for bx1, by1, bx2, by2 in boxes):
            break
    return poly + np.array([cx, cy])


def _rotated(poly: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    return poly @ rot.T


def _look(rng: np.random.Generator, label: int, is_hard: bool,
          num_classes: int, look: Look) -> Tuple[np.ndarray, np.ndarray]:
    """Centred polygon and colour of one object.

    A hard variant of class A is drawn like its look-alike B (same shape,
    B's colour, or a blend of A's and B's by ``look.hard_colour_mix``),
    small and slightly rotated, with a hole: at a mix of 1 only the hole
    tells it from B, and only a few objects of A look like this.
    """
    shape, _, rgb = class_spec(label)
    smin, smax = look.object_size
    poly = unit_polygon(shape)
    if not is_hard:
        size = rng.uniform(smin, smax)
        aspect = rng.uniform(0.8, 1.25)
        poly = poly * (size / 2) * np.array([aspect**0.5, aspect**-0.5])
        return poly, np.asarray(rgb) * rng.uniform(0.85, 1.0)
    size = rng.uniform(smin, smin + HARD_SIZE_FRACTION * (smax - smin))
    # At most 15 degrees: a diamond must not turn into a square.
    poly = _rotated(poly * (size / 2),
                    rng.uniform(5, 15) * rng.choice([-1, 1]))
    _, _, lookalike_rgb = class_spec(lookalike_class(label, num_classes))
    mix = look.hard_colour_mix
    colour = (1 - mix) * np.asarray(rgb) + mix * np.asarray(lookalike_rgb)
    return poly, colour * rng.uniform(0.85, 1.0)


def _fill(img: np.ndarray, poly: np.ndarray, colour: np.ndarray) -> None:
    mask = Image.new('L', (img.shape[1], img.shape[0]), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=255)
    img[np.asarray(mask) > 0] = colour


def render_image(rng: np.random.Generator, width: int, height: int,
                 labels: List[int], hard: List[bool], look: Look,
                 num_classes: int) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Draw one image; return its pixels and its objects' geometry.

    Args:
        rng (np.random.Generator): This image's generator.
        width (int): Image width.
        height (int): Image height.
        labels (list[int]): Class of every object.
        hard (list[bool]): Which objects are hard variants.
        look (Look): Object sizes and the hard variants' colour.
        num_classes (int): Number of classes (for the look-alikes).

    Returns:
        tuple: ``(H, W, 3)`` uint8 pixels and, per object, its polygon
        (which is also its mask), box and area.
    """
    img = _background(rng, width, height)
    bg_mean = img.mean(axis=(0, 1))
    boxes: List[Tuple[float, float, float, float]] = []
    objects = []
    for label, is_hard in zip(labels, hard):
        poly, colour = _look(rng, label, is_hard, num_classes, look)
        # Keep the object inside the image whatever its rotated extent.
        extent = poly.max(0) - poly.min(0)
        shrink = min(1.0, (width - 6) / extent[0], (height - 6) / extent[1])
        poly = _place(rng, width, height, poly * shrink, boxes)
        # Round once: the same vertices are drawn, stored and boxed.
        poly = np.round(poly, 2)
        x1, y1 = poly.min(0)
        x2, y2 = poly.max(0)
        boxes.append((x1, y1, x2, y2))
        _fill(img, poly, colour)
        if is_hard:  # the hole (the mask stays the outline)
            centre = (poly.min(0) + poly.max(0)) / 2
            _fill(img, centre + HOLE_SCALE * (poly - centre), bg_mean)
        objects.append(
            dict(
                poly=poly,
                bbox=(float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                area=round(polygon_area(poly), 2)))
    img = img + rng.normal(0, 7, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), objects
