# HRNetV2-W18 + DeepLabv2 ASPP head on Cityscapes, 512x1024 crops, the HRNet 80k recipe of
# ../hrnet/hrnet_w18_cityscapes.py (SGD lr 0.01, poly, 4 GPUs x 2 images, SyncBN backbone).
#
# Representation: HRNetV2 (the choice of the HRNet paper for segmentation): all four streams
# (18, 36, 72, 144 ch at 1/4, 1/8, 1/16, 1/32) resized to 1/4 and concatenated, 270 channels,
# then the four atrous classifiers of ASPP. The alternative, the highest stream alone (HRNetV1:
# in_index=0, in_channels=18, no input_transform), would give ASPP 18 channels of mostly local
# context; the concatenation brings the low-resolution streams' context in at no extra layers.
#
# Rates: DeepLabv2's ASPP-L uses (6, 12, 18, 24) on a 1/8 map. Our map is at 1/4, so the rates
# are doubled to (12, 24, 36, 48): every branch sees the same context in image pixels
# (48..192 px) as ASPP-L does on DeepLabv2's ResNet-101.
# ImageNet initialisation of the backbone: open-mmlab://msra/hrnetv2_w18, inherited from
# ../hrnet/hrnet_w18_cityscapes.py; the head starts from DeepLabv2's N(0, 0.01) init.
_base_ = ['../hrnet/hrnet_w18_cityscapes.py']

widths = [18, 36, 72, 144]
model = dict(
    decode_head=dict(
        _delete_=True,
        type='mmseg_hrplus.DeepLabV2ASPPHead',
        in_channels=widths,
        in_index=(0, 1, 2, 3),
        input_transform='resize_concat',
        dilations=(12, 24, 36, 48),
        num_classes=19,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
