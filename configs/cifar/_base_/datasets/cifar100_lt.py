# CIFAR-100-LT (docs/method.md, "CIFAR-LT"): the exponential long-tailed
# training split (class i keeps floor(500 * (1 / ratio) ** (i / 99))
# images), the balanced 10,000-image test split. The python-pickle files of
# https://www.cs.toronto.edu/~kriz/cifar.html, extracted under data/.
# Children set the ratio in train_dataloader.dataset and val_evaluator.
# Knobs at their keys: train_dataloader.dataset.imbalance_ratio (and
# val_evaluator.imbalance_ratio), train_dataloader.dataset.seed (which
# images of each class the long-tailed split keeps), *.dataset.data_root.

# Channel statistics of the CIFAR-100 training images (0-255, RGB).
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    to_rgb=False)  # the CIFAR files are RGB already

# He et al. 2016, Sec. 4.2: pad 4, random 32x32 crop, horizontal flip.
train_pipeline = [
    dict(type='PadRandomCrop', size=32, padding=4),
    dict(type='RandomHorizontalFlip', prob=0.5),
    # sample_idx stays in the data samples (the difficulty hook needs it).
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CIFAR100LT',
        data_root='data/cifar-100-python',
        split='train',
        imbalance_ratio=100,
        seed=0,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CIFAR100LT',
        data_root='data/cifar-100-python',
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Many / medium / few-shot groups from the training counts of the same
# profile (> 100 / 20-100 / < 20 images).
val_evaluator = dict(
    type='LongTailAccuracy', num_classes=100, imbalance_ratio=100)
test_evaluator = val_evaluator
