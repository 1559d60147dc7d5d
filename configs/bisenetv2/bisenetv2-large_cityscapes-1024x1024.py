# BiSeNetV2-L on Cityscapes: the paper's larger model (75.3 mIoU Cityscapes test, 47.3 FPS),
# same recipe as bisenetv2_cityscapes-1024x1024.py.
#
# "Width x2, depth x3" as we build it (mmseg_hrplus.BiSeNetV2 arch='large'): every channel of
# both branches doubles (detail 128-128-256, semantic 32-64-128-256) and every semantic stage has
# three times the GE layers (6, 6, 12); the detail branch keeps its depth. The aggregation
# follows the 256-channel branches; the main seg head keeps 1024 channels. Booster widths: the
# standard model's where they exceed the tap's width (64, 256, 1024), else the tap's width (32).
_base_ = ['./bisenetv2_cityscapes-1024x1024.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
booster = dict(
    type='mmseg_hrplus.BoosterHead',
    num_convs=2,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
model = dict(
    backbone=dict(arch='large'),
    decode_head=dict(in_channels=(256, 256), bga_channels=256),
    auxiliary_head=[
        dict(booster, in_channels=32, channels=32, in_index=2),
        dict(booster, in_channels=64, channels=64, in_index=3),
        dict(booster, in_channels=128, channels=256, in_index=4),
        dict(booster, in_channels=256, channels=1024, in_index=5),
    ])
