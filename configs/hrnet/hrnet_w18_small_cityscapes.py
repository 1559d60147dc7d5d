# HRNetV2-W18-small + FCN head on Cityscapes, 512x1024 crops, the same 80k recipe as
# ../hrnet_w48_cityscapes.py (4 GPUs x 2 images, SGD lr 0.01, poly, SyncBN).
# mmseg: fcn_hr18s_4xb2-80k_cityscapes-512x1024, 75.31 mIoU, 3.9393M parameters.
# ImageNet initialisation: open-mmlab://msra/hrnetv2_w18_small, the name mmseg's/mmdet's HRNet
# configs use (see ../hrnet_w48_cityscapes.py).
_base_ = ['../hrnet_w48_cityscapes.py']

widths = [18, 36, 72, 144]
model = dict(
    backbone=dict(
        arch='w18_small',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w18_small')),
    decode_head=dict(in_channels=widths, channels=sum(widths)))
