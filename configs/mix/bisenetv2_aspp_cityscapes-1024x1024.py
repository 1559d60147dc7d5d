# BiSeNetV2 + DeepLabv2 ASPP head on Cityscapes, 1024x1024 crops, the BiSeNetV2 recipe of
# ../bisenetv2/bisenetv2_cityscapes-1024x1024.py (from scratch, SGD lr 5e-2, warm-up + poly,
# 150k iterations, batch 16) with its four booster heads kept.
#
# The ASPP replaces the Bilateral Guided Aggregation: the detail output (128 ch @1/8) and the
# semantic output after the Context Embedding (128 ch @1/32, resized to 1/8) are concatenated
# (256 ch @1/8) and read by DeepLabv2's ASPP-L, whose rates (6, 12, 18, 24) were designed for
# a 1/8 map as here.
_base_ = ['../bisenetv2/bisenetv2_cityscapes-1024x1024.py']

model = dict(
    decode_head=dict(
        _delete_=True,
        type='mmseg_hrplus.DeepLabV2ASPPHead',
        in_channels=[128, 128],
        in_index=(0, 1),
        input_transform='resize_concat',
        dilations=(6, 12, 18, 24),
        num_classes=19,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
