# HRNetV2-W18 + BiSeNetV2's Bilateral Guided Aggregation head on Cityscapes, 512x1024 crops,
# the HRNet 80k recipe of ../hrnet/hrnet_w18_cityscapes.py (SGD lr 0.01, poly, 4 GPUs x 2
# images, SyncBN).
#
# The highest-resolution stream (18 ch @1/4) is the detail map and the lowest (144 ch @1/32)
# the semantic map: a stride ratio of 8, so the aggregation's detail down path is a stride-2
# conv then a stride-4 average pool (see mmseg_hrplus.BGAHead). The two middle streams
# (36 ch @1/8, 72 ch @1/16) get BiSeNetV2 booster heads (training only, dropped at inference),
# with the paper's one 3x3 conv and the widths BiSeNetV2 uses at the same strides (64, 256).
# BGA and seg-head widths are BiSeNetV2's (128 and 1024).
_base_ = ['../hrnet/hrnet_w18_cityscapes.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
booster = dict(
    type='mmseg_hrplus.BoosterHead',
    num_convs=1,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
model = dict(
    decode_head=dict(
        _delete_=True,
        type='mmseg_hrplus.BGAHead',
        in_channels=(18, 144),
        in_index=(0, 3),
        stride_ratio=8,
        bga_channels=128,
        channels=1024,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=[
        dict(booster, in_channels=36, channels=64, in_index=1),
        dict(booster, in_channels=72, channels=256, in_index=2),
    ])
