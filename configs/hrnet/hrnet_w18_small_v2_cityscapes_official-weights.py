# HRNetV2-W18-Small-v2 + its segmentation head with the weights published by
# HRNet-Semantic-Segmentation (pytorch-v1.1 branch README, "Small models"; the architecture of
# seg_hrnet_w18_small_v2_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml = our arch 'w18_small',
# which is also mmseg's fcn_hr18s backbone).
# Source's own figure (NOT reproduced here): 76.2 mIoU Cityscapes val, single scale, whole
# 1024x2048 images, trained on the train set (3.9M parameters, 71.6 GFLOPs there).
#
# Convert with `load_from_command` below (SRC = the file of the README's W18-Small-v2 link,
# on OneDrive/Baidu only; a run without the converted file stops at once naming the command),
# then test with this config:
#   python tools/test.py configs/hrnet/hrnet_w18_small_v2_cityscapes_official-weights.py \
#       checkpoints/hrnet_w18_small_v2_cityscapes_official-weights.pth
#
# Resize, head and input normalisation as in hrnet_w48_cityscapes_official-weights.py.
_base_ = ['./hrnet_w48_cityscapes_official-weights.py']

widths = [18, 36, 72, 144]
model = dict(
    backbone=dict(arch='w18_small'),
    decode_head=dict(in_channels=widths, channels=sum(widths)))

load_from = 'checkpoints/hrnet_w18_small_v2_cityscapes_official-weights.pth'
load_from_command = 'python tools/model_converters/convert.py hrnet-seg SRC ' + load_from
custom_hooks = [dict(type='RequireConvertedCheckpointsHook', files={load_from: load_from_command})]
