"""Which capture reads which head: the registry behind ``build_capture``.

A new head is one :class:`~.probability_capture.ProbabilityCapture`
subclass and one ``register_capture(HeadClass)`` (docs/design.md, "Where
things live"); messages name :func:`supported_heads`.
"""
from typing import Any, Callable, Dict, List, Optional, Type

import torch

__all__ = ['register_capture', 'supported_heads', 'build_capture']

#: head class -> the capture that reads it (see register_capture)
_CAPTURES: Dict[type, Type[Any]] = {}


def register_capture(*head_types: type) -> Callable[[type], type]:
    """Class decorator: the capture reads heads of ``head_types`` (and of
    their subclasses, unless a subclass has its own)."""

    def register(cls: type) -> type:
        for head_type in head_types:
            _CAPTURES[head_type] = cls
        return cls

    return register


def supported_heads() -> List[str]:
    """Names of the head classes a capture is registered for."""
    return [t.__name__ for t in _CAPTURES]


def _capture_for(head: Any) -> Optional[Type[Any]]:
    for klass in type(head).__mro__:
        if klass in _CAPTURES:
            return _CAPTURES[klass]
    return None


def build_capture(model: torch.nn.Module,
                  sink: Callable[[dict], None],
                  stage: int = -1,
                  attach: bool = True) -> Any:
    """The registered capture of a (de-wrapped) model's head.

    The model's ``roi_head`` (detectors), else its ``head`` (classifiers),
    is looked up by class in the registry (:func:`register_capture`).
    ``attach=False`` installs no wrapper: the eval-pass mode only calls the
    capture's ``predict_gt``.

    Raises:
        UnsupportedModelError: names the supported heads.
    """
    for attr in ('roi_head', 'head'):
        head = getattr(model, attr, None)
        capture = _capture_for(head) if head is not None else None
        if capture is not None:
            return capture(head, sink, stage=stage, attach=attach)
    heads = {
        attr: type(getattr(model, attr)).__name__
        for attr in ('roi_head', 'head') if getattr(model, attr, None)
    }
    from .probability_capture import UnsupportedModelError
    raise UnsupportedModelError(
        f'DifficultyHook does not support {type(model).__name__} '
        f'(heads: {heads or "none"}): it reads the probabilities of a '
        f'registered head: {", ".join(supported_heads())} or a subclass '
        '(detectors: model.roi_head; classifiers: model.head). A new head '
        'is a ProbabilityCapture subclass registered with '
        'mmdiff.models.register_capture (docs/design.md).')


def register_defaults() -> None:
    """mmdiff's own captures (run once by ``import mmdiff.models``)."""
    from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead

    from mmdiff.classification.heads import ClsHead
    from .probability_capture import ClsHeadCapture, RoIHeadCapture
    register_capture(StandardRoIHead, CascadeRoIHead)(RoIHeadCapture)
    register_capture(ClsHead)(ClsHeadCapture)
