# BiSeNetV2 (Yu et al., IJCV 2021): detail + semantic branches (backbone), Bilateral Guided
# Aggregation + seg head (decode head) and four booster heads (training only).
#
# Backbone outputs (see mmseg_hrplus.BiSeNetV2):
#   0 detail 128ch @1/8 | 1 semantic (after CE) 128ch @1/32 | 2 stem 16ch @1/4
#   3 stage3 32ch @1/8  | 4 stage4 64ch @1/16               | 5 stage5 (before CE) 128ch @1/32
# Booster heads: mmseg's widths and two 3x3 convs each (the paper draws one), so that mmseg's
# trained BiSeNetV2 converts 1:1 (tools/model_converters/convert.py mmseg-bisenetv2). From scratch: the
# backbone's default init is Kaiming-normal convs and BN weight 1, as in the paper.
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
booster = dict(
    type='mmseg_hrplus.BoosterHead',
    num_convs=2,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='mmseg_hrplus.BiSeNetV2', arch='base', norm_cfg=norm_cfg),
    decode_head=dict(
        type='mmseg_hrplus.BGAHead',
        in_channels=(128, 128),
        in_index=(0, 1),
        bga_channels=128,
        stride_ratio=4,
        channels=1024,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=[
        dict(booster, in_channels=16, channels=16, in_index=2),
        dict(booster, in_channels=32, channels=64, in_index=3),
        dict(booster, in_channels=64, channels=256, in_index=4),
        dict(booster, in_channels=128, channels=1024, in_index=5),
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
