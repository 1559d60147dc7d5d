# HRNetV2-W18-Small-v1 + its segmentation head with the weights published by
# HRNet-Semantic-Segmentation (pytorch-v1.1 branch README, "Small models"; the architecture of
# seg_hrnet_w18_small_v1_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml = our arch
# 'w18_small_v1': 64-wide stem, one 32-plane Bottleneck in stage 1, stream widths 16/32/64/128,
# one module per stage, two BasicBlocks per branch).
# Source's own figure (NOT reproduced here): 70.3 mIoU Cityscapes val, single scale, whole
# 1024x2048 images, trained on the train set (1.5M parameters, 31.1 GFLOPs there).
#
# Convert with `load_from_command` below (SRC = the file of the README's W18-Small-v1 link,
# on OneDrive/Baidu only; a run without the converted file stops at once naming the command),
# then test with this config:
#   python tools/test.py configs/hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py \
#       checkpoints/hrnet_w18_small_v1_cityscapes_official-weights.pth
#
# Resize, head and input normalisation as in hrnet_w48_cityscapes_official-weights.py.
_base_ = ['./hrnet_w48_cityscapes_official-weights.py']

widths = [16, 32, 64, 128]
model = dict(
    backbone=dict(arch='w18_small_v1'),
    decode_head=dict(in_channels=widths, channels=sum(widths)))

load_from = 'checkpoints/hrnet_w18_small_v1_cityscapes_official-weights.pth'
load_from_command = 'python tools/model_converters/convert.py hrnet-seg SRC ' + load_from
custom_hooks = [dict(type='RequireConvertedCheckpointsHook', files={load_from: load_from_command})]
