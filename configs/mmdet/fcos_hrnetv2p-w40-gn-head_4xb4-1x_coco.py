# FCOS (GN head) with HRNetV2p-W40 on COCO, 1x schedule (see the W32 config for the details).
# mmdet's only FCOS W40 config is the multi-scale 2x one
# (hrnet/fcos_hrnetv2p-w40-gn-head_ms-640-800-4xb4-2x_coco.py): same model, other schedule and
# scales; this one keeps the single-scale 1x recipe of mmdet's W18 and W32.
_base_ = './fcos_hrnetv2p-w32-gn-head_4xb4-1x_coco.py'

model = dict(
    backbone=dict(
        arch='w40',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w40')),
    neck=dict(in_channels=[40, 80, 160, 320]))
