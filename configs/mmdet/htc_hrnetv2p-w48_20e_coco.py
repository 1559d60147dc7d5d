# Hybrid Task Cascade with HRNetV2p-W48 on COCO, 20 epochs (see the W32 config for the details).
# mmdet ships no W48 detector: this one is new (same recipe as W18-W40).
_base_ = './htc_hrnetv2p-w32_20e_coco.py'

model = dict(
    backbone=dict(
        arch='w48',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w48')),
    neck=dict(in_channels=[48, 96, 192, 384]))
