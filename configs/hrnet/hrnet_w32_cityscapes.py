# HRNetV2-W32 + FCN head on Cityscapes, 512x1024 crops, the same 80k recipe as
# ../hrnet_w48_cityscapes.py (4 GPUs x 2 images, SGD lr 0.01, poly, SyncBN).
# ImageNet initialisation: open-mmlab://msra/hrnetv2_w32, the name mmseg's/mmdet's HRNet
# configs use (see ../hrnet_w48_cityscapes.py).
_base_ = ['../hrnet_w48_cityscapes.py']

widths = [32, 64, 128, 256]
model = dict(
    backbone=dict(
        arch='w32',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w32')),
    decode_head=dict(in_channels=widths, channels=sum(widths)))
