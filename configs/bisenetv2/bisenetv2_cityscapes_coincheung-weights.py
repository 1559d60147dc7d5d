# BiSeNetV2 on Cityscapes (19 classes) as CoinCheung/BiSeNet builds it, for that project's
# trained weights (lib/models/bisenetv2.py; file model_final_v2_city.pth from its releases).
#
# Convert with `load_from_command` below (the converter downloads CoinCheung's release file
# itself; a run without the converted file stops at once naming that command), then test or
# fine-tune with this config:
#   python tools/test.py configs/bisenetv2/bisenetv2_cityscapes_coincheung-weights.py \
#       checkpoints/bisenetv2_city_coincheung.pth
#
# Published figure (CoinCheung/BiSeNet's own, NOT reproduced by us): 74.95 mIoU on Cityscapes
# val, single scale (whole 1024x2048 images); the README notes that retraining varies between
# 73.1 and 75.1.
#
# With the converted file this model is CoinCheung's network (measured against the original
# code at commit 6b4b67a, random weights and BN statistics, eval, 1x3x256x512: identical
# logits for the same normalised tensor, main and booster heads; 4e-5 relative from one uint8
# image through each side's own normalisation, which rounds differently):
# - backbone: identical layers to ours (bias-free convs, default BN, same Stem/GE/CE);
# - BGA head: nearest x4 upsampling of the semantic side and no bias on the two 1x1 convs
#   (upsample_mode='nearest', pointwise_bias=False); seg head 3x3 128->1024-BN-ReLU, dropout
#   0.1, 1x1 to classes, bilinear (align_corners=False) to the input size;
# - booster heads (training only): 3x3 conv-BN-ReLU to 128, nearest x2, 3x3 conv-BN-ReLU to
#   16/64/256/1024, 1x1 classifier (their dropout sits after the first conv, ours before the
#   classifier);
# - input: RGB, /255, minus mean (0.3257, 0.3690, 0.3223), divided by std (0.2112, 0.2148,
#   0.2115) (lib/data/cityscapes_cv2.py), here in 0-255 terms (x 255), bgr_to_rgb=True as mmseg
#   loads images as BGR. Their single-scale evaluation runs whole 1024x2048 images (sides
#   already multiples of 32): our test pipeline's 2048x1024 resize is the identity there.
#
# Training (fine-tuning from load_from, the converted file) uses the data pipeline,
# losses (cross-entropy) and schedule of bisenetv2_cityscapes-1024x1024.py, which is mmseg's
# from-scratch recipe, NOT CoinCheung's (OHEM cross-entropy with threshold 0.7, 512x1024 crops,
# scale 0.25-2.0, lr 5e-3, fp16); shorten the schedule for fine-tuning.
_base_ = ['./bisenetv2_cityscapes-1024x1024.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
# CoinCheung's Cityscapes statistics (RGB, 0-1) x 255.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[0.3257 * 255, 0.3690 * 255, 0.3223 * 255],
    std=[0.2112 * 255, 0.2148 * 255, 0.2115 * 255],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(1024, 1024))
booster = dict(
    type='mmseg_hrplus.BoosterHead',
    num_convs=2,
    hidden_channels=128,
    upsample_before_last_conv=2,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(type='mmseg_hrplus.BiSeNetV2', arch='base', norm_cfg=norm_cfg),
    decode_head=dict(
        type='mmseg_hrplus.BGAHead',
        in_channels=(128, 128),
        in_index=(0, 1),
        bga_channels=128,
        stride_ratio=4,
        upsample_mode='nearest',
        pointwise_bias=False,
        channels=1024,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False),
    # The four booster heads of CoinCheung's training model, on the Stem and stages 3, 4, 5.
    auxiliary_head=[
        dict(booster, in_channels=16, channels=16, in_index=2),
        dict(booster, in_channels=32, channels=64, in_index=3),
        dict(booster, in_channels=64, channels=256, in_index=4),
        dict(booster, in_channels=128, channels=1024, in_index=5),
    ])

load_from = 'checkpoints/bisenetv2_city_coincheung.pth'
load_from_command = (
    'python tools/model_converters/convert.py bisenet-coincheung '
    'https://github.com/CoinCheung/BiSeNet/releases/download/0.0.0/model_final_v2_city.pth '
    + load_from)
custom_hooks = [dict(type='RequireConvertedCheckpointsHook', files={load_from: load_from_command})]
