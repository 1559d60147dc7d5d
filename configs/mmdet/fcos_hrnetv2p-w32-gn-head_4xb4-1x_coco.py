# FCOS (GroupNorm head) with HRNetV2p-W32 on COCO, 1x schedule, 4 GPUs x 4 images: mmdet's
# hrnet/fcos_hrnetv2p-w32-gn-head_4xb4-1x_coco.py with our HRNet backbone and HRNetV2p neck.
# Same parameter names and count as mmdet's model. What differs from the R-CNN configs, as in
# mmdet's:
# - the neck's per-level 3x3 convs have stride 2, so the 5 levels are at strides 8..128, those
#   of the FCOS head (the R-CNN necks give 4..64);
# - the base is mmdet's Caffe-ResNet FCOS (GN head, lr 0.01, bias lr x2 and no bias decay,
#   gradient clipping at 35, constant 1/3 warm-up), but the images are normalised with the
#   ImageNet mean and std of the HRNet weights, in BGR order since bgr_to_rgb stays False.
# upsample_mode='nearest' and norm_eval=True as in mmdet's HRNet (see
# faster-rcnn_hrnetv2p-w32_1x_coco.py); the other widths inherit this file.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_4xb4-1x_coco.py'

custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False),
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
        stride=2,
        num_outs=5))
