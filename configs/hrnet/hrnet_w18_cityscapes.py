# HRNetV2-W18 + FCN head on Cityscapes, 512x1024 crops, the same 80k recipe as
# ../hrnet_w48_cityscapes.py (4 GPUs x 2 images, SGD lr 0.01, poly, SyncBN).
# mmseg: fcn_hr18_4xb2-80k_cityscapes-512x1024, 78.65 mIoU, 9.6408M parameters.
# ImageNet initialisation: open-mmlab://msra/hrnetv2_w18, the name mmseg's/mmdet's HRNet
# configs use (see ../hrnet_w48_cityscapes.py).
_base_ = ['../hrnet_w48_cityscapes.py']

widths = [18, 36, 72, 144]
model = dict(
    backbone=dict(
        arch='w18',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w18')),
    decode_head=dict(in_channels=widths, channels=sum(widths)))
