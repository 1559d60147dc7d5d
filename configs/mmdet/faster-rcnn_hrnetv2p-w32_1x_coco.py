# Faster R-CNN with HRNetV2p-W32 on COCO, 1x schedule: mmdet's
# hrnet/faster-rcnn_hrnetv2p-w32-1x_coco.py with our HRNet backbone and HRNetV2p neck.
# Same parameter names and count (47.2797M) as mmdet's model, so its checkpoints load as is.
# upsample_mode='nearest' reproduces mmdet's HRNet (the published detectors were trained with it;
# that setting needs input sides that are multiples of 32, which pad_size_divisor=32 gives);
# 'bilinear' (mmseg's) works on any size.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNet',
        arch='w32',
        upsample_mode='nearest',
        norm_cfg=dict(type='BN', requires_grad=True),
        # mmdet's HRNet keeps BN statistics frozen while fine-tuning from ImageNet.
        norm_eval=True,
        # ImageNet weights of the official HRNetV2 (downloaded by mmengine on first use;
        # or point `checkpoint` at a local file, e.g. 'checkpoints/hrnetv2_w32-dc9eeb4f.pth').
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w32')),
    neck=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNetV2pNeck',
        in_channels=[32, 64, 128, 256],
        out_channels=256,
        num_outs=5))
