# DeepLabv2 ResNet-101 (output stride 8, ASPP-L) on Cityscapes (2975 fine train images, 19
# classes, evaluated on the 500 val images at 1024x2048).
#
# Recipe and where each number comes from:
# - SGD, momentum 0.9, weight decay 5e-4, "poly" policy with power 0.9: paper, Sec. 4.1 (the
#   same protocol is used for every dataset).
# - base lr 2.5e-4, classifier lr x10, a batch of 10 images: the authors' released ResNet-101
#   solver (see the VOC config).
# - 80k iterations: the paper gives no Cityscapes iteration count that we could confirm; 80k is
#   mmseg's standard length for dilated ResNet-101 models on Cityscapes (schedule_80k), so the
#   result can be compared with the mmseg model zoo. This number is ours, not the paper's.
# - Not reproduced: multi-scale input training (MSC) and the dense CRF. Reported numbers:
#   70.4 mIoU Cityscapes test (ResNet-101, full resolution, with CRF); 71.4 val in the paper's
#   ablation with CRF.
# Data: mmseg's cityscapes base (data/cityscapes, leftImg8bit + gtFine with *_labelTrainIds.png
# written by mmseg's tools/dataset_converters/cityscapes.py); 512x1024 random crops after
# random scaling 0.5-2.0 of 2048x1024.
_base_ = [
    '../_base_/models/deeplabv2_r101-d8.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, decode_head=dict(num_classes=19))

# The paper's batch of 10: 5 GPUs x 2 images (mmseg's per-GPU batch at 512x1024). With another
# GPU count pass --cfg-options
# auto_scale_lr.enable=True (linear lr scaling from base_batch_size).
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=10)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.0)}),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
