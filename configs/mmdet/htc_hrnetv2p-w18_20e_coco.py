# Hybrid Task Cascade with HRNetV2p-W18 on COCO, 20 epochs (see the W32 config for the details).
_base_ = './htc_hrnetv2p-w32_20e_coco.py'

model = dict(
    backbone=dict(
        arch='w18',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w18')),
    neck=dict(in_channels=[18, 36, 72, 144]))
