# Mask R-CNN with HRNetV2p-W32 on COCO, 1x schedule: mmdet's hrnet/mask-rcnn_hrnetv2p-w32-1x_coco.py
# with our HRNet backbone and HRNetV2p neck. Same parameter names and count as mmdet's model, so
# its checkpoints load as is. upsample_mode='nearest' and norm_eval=True as in mmdet's HRNet (see
# faster-rcnn_hrnetv2p-w32_1x_coco.py); the other widths inherit this file.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNet',
        arch='w32',
        upsample_mode='nearest',
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w32')),
    neck=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNetV2pNeck',
        in_channels=[32, 64, 128, 256],
        out_channels=256,
        num_outs=5))
