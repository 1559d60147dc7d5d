# HRNetV2-W48 + its segmentation head with the weights published by HRNet-Semantic-Segmentation
# (hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth, pytorch-v1.1 branch README).
# Source's own figure (NOT reproduced here): 81.1 mIoU Cityscapes val, single scale, no flip,
# whole 1024x2048 images, trained on the train set.
#
# Convert with `load_from_command` below (the source file is on OneDrive/Baidu only, nothing
# downloads it; a run without the converted file stops at once naming that command), then test:
#   python tools/test.py configs/hrnet/hrnet_w48_cityscapes_official-weights.py \
#       checkpoints/hrnet_w48_cityscapes_official-weights.pth
#
# With the converted file this model is the original network (same logits, measured against its
# code at odd and even sizes, README):
# - fuse_resize='single': a lower stream reaches a higher one by ONE bilinear resize straight to
#   the target size (after its 1x1 conv + BN), align_corners=False (the seg_hrnet experiments set
#   ALIGN_CORNERS False; pytorch-v1.1's F.upsample defaults to it). mmseg's default two steps
#   differ when a stream side is odd, e.g. the 63x125 1/4 map of a 250x500 input.
# - Head: mmseg's FCNHead with resize_concat is the original last_layer: streams resized once
#   to the 1/4 size and concatenated, 1x1 conv + BN + ReLU (the original conv bias is folded
#   into the BN running mean by the converter), 1x1 conv -> 19 classes; the logits are resized
#   once to the input size (bilinear, align_corners=False) as the original test code does.
# - Input: RGB, mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) of [0, 1] pixels, i.e.
#   mmseg's default mean/std x 255 with bgr_to_rgb=True (the base config's preprocessor).
# - Test: whole 1024x2048 images (mmseg's Cityscapes test pipeline; the original's single
#   1024x2048 "sliding" crop covers the whole image).
_base_ = ['../hrnet_w48_cityscapes.py']

model = dict(
    # The converted checkpoint holds every weight: no ImageNet download.
    backbone=dict(fuse_resize='single', align_corners=False, init_cfg=None),
    decode_head=dict(align_corners=False))

load_from = 'checkpoints/hrnet_w48_cityscapes_official-weights.pth'
load_from_command = ('python tools/model_converters/convert.py hrnet-seg '
                     'hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth ' + load_from)
custom_hooks = [dict(type='RequireConvertedCheckpointsHook', files={load_from: load_from_command})]
