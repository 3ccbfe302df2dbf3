import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import MODELS

import mmdiff.classification  # noqa: F401 (registers the modules)
from mmdiff.classification import (ClsDataPreprocessor, ClsDataSample,
                                   CrossEntropyLoss, GlobalAveragePooling,
                                   LinearClsHead, MultiHeadNormClsHead,
                                   ResNetCifar)


def _samples(labels, start=0):
    return [
        ClsDataSample(metainfo=dict(sample_idx=start + i)).set_gt_label(y)
        for i, y in enumerate(labels)
    ]


def test_resnet32_shapes_and_size():
    net = ResNetCifar(depth=32)
    assert [len(s) for s in net.stages] == [5, 5, 5]
    (out, ) = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 64, 8, 8)
    # 0.46M parameters with a 10-way linear layer, the ResNet-32 of He et
    # al. 2016 and of the CIFAR-LT papers (LDAM's resnet32: 464,154).
    head = LinearClsHead(10, 64)
    n = sum(p.numel() for m in (net, head) for p in m.parameters())
    assert n == 464154


def test_resnet_options():
    net = ResNetCifar(depth=8, widths=(4, 8, 16), out_indices=(0, 1, 2))
    outs = net(torch.zeros(1, 3, 32, 32))
    assert [o.shape[1:] for o in outs] == [(4, 32, 32), (8, 16, 16),
                                           (16, 8, 8)]
    b = ResNetCifar(depth=8, shortcut='B')
    a = ResNetCifar(depth=8, shortcut='A')
    # Two projection shortcuts (conv + BN) add parameters only for 'B'.
    extra = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    assert sum(p.numel() for p in b.parameters()) - \
        sum(p.numel() for p in a.parameters()) == extra
    assert b(torch.zeros(1, 3, 32, 32))[0].shape == (1, 64, 8, 8)
    for kwargs in (dict(depth=30), dict(depth=2), dict(shortcut='C'),
                   dict(widths=(16, 32)), dict(out_indices=(3, ))):
        with pytest.raises(ValueError):
            ResNetCifar(**kwargs)


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = ResNetCifar(depth=8).stages[1][0]
    x = torch.randn(1, 16, 8, 8)
    ident = block._identity(x)
    assert ident.shape == (1, 32, 4, 4)
    torch.testing.assert_close(ident[:, 8:24], x[:, :, ::2, ::2])
    assert not ident[:, :8].any() and not ident[:, 24:].any()


def test_global_average_pooling():
    gap = GlobalAveragePooling()
    x = torch.arange(8.).view(1, 2, 2, 2)
    torch.testing.assert_close(gap(x), torch.tensor([[1.5, 5.5]]))
    (y, ) = gap((x, ))
    assert y.shape == (1, 2)
    with pytest.raises(TypeError):
        gap([x])


def test_multi_head_norm_logits_by_hand():
    # D = 4, K = 2 heads of 2 dims, C = 2, gamma = 1/32, tau = 16.
    head = MultiHeadNormClsHead(2, 4, num_heads=2, tau=16, gamma=1 / 32)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1., 0., 0., .5], [0., 2., 3., 4.]]))
    x = torch.tensor([[3., 4., 0., 2.]])
    # x chunks: (3, 4) / 5 = (.6, .8); (0, 2) / 2 = (0, 1).
    # Class 0: (1, 0) / (1 + 1/32) -> <., (.6, .8)> = .6 * 32/33
    #          (0, .5) / (.5 + 1/32) -> <., (0, 1)> = .5 * 32/17
    # Class 1: (0, 2) / (2 + 1/32) -> .8 * 2 * 32/65
    #          (3, 4) / (5 + 1/32) -> (3 * 0 + 4 * 1) * 32/161
    # logit = 16 / 2 * (sum over the two heads)
    expected = torch.tensor([[
        8 * (.6 * 32 / 33 + .5 * 32 / 17),
        8 * (.8 * 2 * 32 / 65 + 4 * 32 / 161),
    ]])
    torch.testing.assert_close(head((x, )), expected)
    torch.testing.assert_close(head(x), expected)
    # Scale invariance in x, per head; a zero chunk gives no NaN.
    x2 = torch.tensor([[30., 40., 0., .2]])
    torch.testing.assert_close(head(x2), expected)
    assert torch.isfinite(head(torch.zeros(1, 4))).all()


def test_multi_head_norm_invalid():
    with pytest.raises(ValueError, match='divisible'):
        MultiHeadNormClsHead(10, 63, num_heads=2)
    with pytest.raises(ValueError):
        MultiHeadNormClsHead(10, 64, tau=0)


def test_head_loss_goes_through_get_loss():
    head = MultiHeadNormClsHead(3, 8)
    feats = (torch.randn(4, 8), )
    samples = _samples([0, 1, 2, 1], start=10)
    seen = []
    original = head._get_loss

    def spy(cls_score, data_samples, **kwargs):
        seen.append(
            (cls_score.detach().clone(), [s.sample_idx for s in data_samples]))
        return original(cls_score, data_samples, **kwargs)

    head._get_loss = spy
    losses = head.loss(feats, samples)
    assert set(losses) == {'loss'}
    assert len(seen) == 1
    score, idx = seen[0]
    assert idx == [10, 11, 12, 13]
    torch.testing.assert_close(score, head(feats).detach())
    expected = torch.nn.functional.cross_entropy(score,
                                                 torch.tensor([0, 1, 2, 1]))
    torch.testing.assert_close(losses['loss'].detach(), expected)


def test_head_predict():
    head = LinearClsHead(3, 8)
    feats = (torch.randn(5, 8), )
    samples = _samples([0, 1, 2, 1, 0])
    out = head.predict(feats, samples)
    assert out[0] is samples[0]
    scores = torch.stack([s.pred_score for s in out])
    torch.testing.assert_close(scores.sum(1), torch.ones(5))
    torch.testing.assert_close(scores, torch.softmax(head(feats), 1).detach())
    assert [int(s.pred_label) for s in out] == scores.argmax(1).tolist()
    assert len(head.predict(feats)) == 5


def test_cross_entropy_loss():
    score = torch.tensor([[2., 0.], [0., 1.], [1., 1.]])
    label = torch.tensor([0, 1, 0])
    per = torch.nn.functional.cross_entropy(score, label, reduction='none')
    torch.testing.assert_close(CrossEntropyLoss()(score, label), per.mean())
    torch.testing.assert_close(
        CrossEntropyLoss(loss_weight=2.)(score, label, avg_factor=2),
        per.sum())
    weighted = CrossEntropyLoss(class_weight=[1., 3.])(score, label)
    torch.testing.assert_close(weighted,
                               (per * torch.tensor([1., 3., 1.])).mean())
    assert CrossEntropyLoss(reduction='none')(score, label).shape == (3, )
    with pytest.raises(ValueError):
        CrossEntropyLoss(reduction='max')


def test_data_preprocessor_normalises_and_stacks():
    pre = ClsDataPreprocessor(mean=[10., 20., 30.], std=[2., 4., 5.])
    imgs = [torch.full((3, 4, 4), 30, dtype=torch.uint8) for _ in range(2)]
    samples = _samples([0, 1], start=5)
    out = pre(dict(inputs=imgs, data_samples=samples), training=True)
    assert out['inputs'].shape == (2, 3, 4, 4)
    assert out['inputs'].dtype == torch.float32
    torch.testing.assert_close(out['inputs'][0, :, 0, 0],
                               torch.tensor([10., 2.5, 0.]))
    assert [s.sample_idx for s in out['data_samples']] == [5, 6]
    swap = ClsDataPreprocessor(to_rgb=True)
    img = torch.arange(3, dtype=torch.uint8).view(3, 1, 1)
    out = swap(dict(inputs=[img], data_samples=None))
    assert out['inputs'].flatten().tolist() == [2., 1., 0.]
    with pytest.raises(ValueError):
        ClsDataPreprocessor(mean=[0., 0., 0.])


def _classifier(head_type='MultiHeadNormClsHead'):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNetCifar', depth=8, widths=(4, 8, 16)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type=head_type, num_classes=3, in_channels=16),
            data_preprocessor=dict(mean=[128.] * 3, std=[64.] * 3)))


@pytest.mark.parametrize('head_type',
                         ['MultiHeadNormClsHead', 'LinearClsHead'])
def test_classifier_modes(head_type):
    model = _classifier(head_type)
    assert isinstance(model.data_preprocessor, ClsDataPreprocessor)
    batch = pseudo_collate([
        dict(
            inputs=torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8),
            data_samples=s) for s in _samples([0, 2, 1], start=7)
    ])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert losses['loss'].requires_grad
    model.eval()
    preds = model(**data, mode='predict')
    assert [s.sample_idx for s in preds] == [7, 8, 9]
    assert preds[0].pred_score.shape == (3, )
    assert model(data['inputs'], mode='tensor').shape == (3, 3)
    with pytest.raises(ValueError):
        model(data['inputs'], mode='loss')
    with pytest.raises(ValueError):
        model(data['inputs'], mode='bogus')
    # train_step runs the whole loss path with an optimizer wrapper.
    from mmengine.optim import OptimWrapper
    model.train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(batch, wrapper)
    assert 'loss' in log_vars
