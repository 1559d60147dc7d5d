# Cascade Mask R-CNN with HRNetV2p-W32 on COCO, 20 epochs (lr steps at 16 and 19, as mmdet's
# hrnet/cascade-mask-rcnn_hrnetv2p-w32_20e_coco.py) with our HRNet backbone and HRNetV2p neck.
# Same parameter names and count as mmdet's model. upsample_mode='nearest' and norm_eval=True as
# in mmdet's HRNet (see faster-rcnn_hrnetv2p-w32_1x_coco.py); the other widths inherit this file.
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'

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

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[16, 19],
         gamma=0.1)
]
