# DeepLabv2 (Chen et al., TPAMI 2017): ResNet-101 at output stride 8 + ASPP-L.
#
# Backbone as in the paper: the original ResNet (7x7 stem), res4/res5 without stride and with
# dilation 2 and 4 in EVERY block (no contraction of the first block, unlike mmseg's -d8 models).
# Head: four 3x3 atrous classifiers (rates 6, 12, 18, 24) whose logits are summed; no auxiliary
# head. BatchNorm is frozen (statistics and affine parameters), as in the released Caffe
# ResNet-101 models, which were fine-tuned with use_global_stats and a batch of 1 image per
# forward pass (gradients accumulated over 10).
#
# ImageNet initialisation: torchvision's ResNet-101 (IMAGENET1K_V1), by name as mmseg's configs
# do: torchvision://resnet101 is https://download.pytorch.org/models/resnet101-63fe2227.pth
# (mmengine's table; torchvision need not be installed), downloaded once, checked against the
# hash in its name, cached under <torch hub dir>/checkpoints/mmseg_hrplus/ and read by our safe
# reader. Its keys are DilatedResNet's (stem='v1') as they are: every backbone weight loads;
# only the ImageNet classifier fc.* is left unused (docs/init_weights.md). An mmseg ResNet-101
# (7x7 stem) checkpoint also loads as it is. Set checkpoint=None to start from scratch.
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=False)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmseg_hrplus.DilatedResNet',
        depth=101,
        output_stride=8,
        stem='v1',
        contract_dilation=False,
        out_indices=(3, ),
        norm_cfg=norm_cfg,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')),
    decode_head=dict(
        type='mmseg_hrplus.DeepLabV2ASPPHead',
        in_channels=2048,
        in_index=0,
        num_classes=19,
        dilations=(6, 12, 18, 24),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
