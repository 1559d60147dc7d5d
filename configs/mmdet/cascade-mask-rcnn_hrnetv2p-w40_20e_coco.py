# Cascade Mask R-CNN with HRNetV2p-W40 on COCO, 20 epochs (see the W32 config for the details).
_base_ = './cascade-mask-rcnn_hrnetv2p-w32_20e_coco.py'

model = dict(
    backbone=dict(
        arch='w40',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w40')),
    neck=dict(in_channels=[40, 80, 160, 320]))
