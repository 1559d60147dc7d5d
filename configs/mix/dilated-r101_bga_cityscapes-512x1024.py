# DeepLabv2's dilated ResNet-101 (output stride 8, frozen BN) + BiSeNetV2's Bilateral Guided
# Aggregation head on Cityscapes, 512x1024 crops, the DeepLabv2 recipe of
# ../deeplabv2/deeplabv2_r101-d8_cityscapes-512x1024.py (SGD lr 2.5e-4, head lr x10, poly,
# 80k iterations, batch 10).
#
# Backbone outputs (out_indices 0..3): res2 256 ch @1/4, res3 512 ch @1/8, res4 1024 ch @1/8,
# res5 2048 ch @1/8 (dilated). The detail map is res2 (the 1/4 low-level features a
# DeepLabv3+-style decoder would use) and the semantic map res5: a stride ratio of 2 (the
# aggregation's detail down path is one stride-2 conv, no pool). res3 and res4 get booster
# heads (training only), one 3x3 conv each.
_base_ = ['../deeplabv2/deeplabv2_r101-d8_cityscapes-512x1024.py']

head_norm_cfg = dict(type='SyncBN', requires_grad=True)
booster = dict(
    type='mmseg_hrplus.BoosterHead',
    num_convs=1,
    num_classes=19,
    norm_cfg=head_norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3)),
    decode_head=dict(
        _delete_=True,
        type='mmseg_hrplus.BGAHead',
        in_channels=(256, 2048),
        in_index=(0, 3),
        stride_ratio=2,
        bga_channels=128,
        channels=1024,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=head_norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=[
        dict(booster, in_channels=512, channels=256, in_index=1),
        dict(booster, in_channels=1024, channels=256, in_index=2),
    ])
