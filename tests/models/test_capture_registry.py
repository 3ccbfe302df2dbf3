"""The capture extension point: a new head is one subclass and one
registration; the supported heads are listed from the registry."""
from pathlib import Path
from typing import Any, List

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdiff.classification.data_sample import ClsDataSample
from mmdiff.models import (ClsHeadCapture, UnsupportedModelError,
                           build_capture, capture_registry, register_capture,
                           supported_heads)

README = (Path(__file__).resolve().parents[2] / 'README.md').read_text()


class ToyHead(nn.Module):
    """A head mmdiff has never seen: no ClsHead, its own loss."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats)

    def loss(self, feats: torch.Tensor, data_samples: List[Any]) -> dict:
        return self._get_loss(self(feats), data_samples)

    def _get_loss(self, cls_score: torch.Tensor,
                  data_samples: List[Any]) -> dict:
        labels = torch.cat([s.gt_label for s in data_samples])
        return dict(loss=F.cross_entropy(cls_score, labels))


class ToyModel(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.head = ToyHead()


@pytest.fixture
def toy_capture() -> Any:

    @register_capture(ToyHead)
    class ToyCapture(ClsHeadCapture):
        """Reads ToyHead as a classification head."""

    try:
        yield ToyCapture
    finally:
        capture_registry._CAPTURES.pop(ToyHead)


def test_a_registered_toy_head_trains_a_captured_step(
        toy_capture: Any) -> None:
    model = ToyModel()
    records: List[dict] = []
    capture = build_capture(model, records.append)
    assert type(capture) is toy_capture and 'ToyHead' in supported_heads()
    samples = [
        ClsDataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % 3)
        for i in (5, 7)
    ]
    feats = torch.randn(2, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scores = model.head(feats).detach()
    loss = model.head.loss(feats, samples)['loss']
    loss.backward()
    optimizer.step()
    assert len(records) == 1
    batch = records[0]
    assert batch['sample_idx'].tolist() == [5, 7]
    assert batch['labels'].tolist() == [2, 1]
    torch.testing.assert_close(batch['probs'], torch.softmax(scores, 1))
    capture.detach()
    model.head.loss(feats, samples)
    assert len(records) == 1  # detached: nothing captured


def test_an_unregistered_head_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(UnsupportedModelError) as err:
        build_capture(ToyModel(), print)
    message = str(err.value)
    assert 'ToyHead' in message and 'register_capture' in message
    for name in supported_heads():
        assert name in message


def test_the_readme_lists_the_registered_heads() -> None:
    line = next(p for p in README.split('\n\n') if 'Supported heads' in p)
    for name in supported_heads():
        assert f'`{name}`' in line, name
