# HRNetV2-W48 + FCN head on Cityscapes with the same model and 80k recipe as
# ../hrnet_w48_cityscapes.py, computed with less arithmetic (same parameters and state-dict
# keys, so mmseg's fcn_hr48 checkpoints and the ImageNet initialisation load unchanged; outputs
# and gradients equal up to float rounding):
# - backbone conv_cfg: WinogradConv2d computes the 3x3 stride-1 convs with >= 96 channels
#   (streams 2-4) by Winograd F(4x4, 3x3) on CPU, forward and backward, where it measures
#   faster: with autotune each conv shape times Winograd against the direct conv once (in
#   training, forward and backward together) on the running CPU and keeps the faster; on GPUs
#   it is nn.Conv2d (cuDNN chooses its own algorithms);
# - backbone channels_last: weights and activations in NHWC layout, which the Winograd tiling
#   and oneDNN read without reorders (the head stays NCHW, measured faster so);
# - head: ResizeSumFCNHead applies the first 1x1 conv per stream before upsampling.
# Measured by tools/benchmark.py against mmseg's fcn_hr48 with the same weights (README).
_base_ = ['../hrnet_w48_cityscapes.py']

model = dict(
    backbone=dict(conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d', autotune=True),
                  channels_last=True),
    decode_head=dict(type='mmseg_hrplus.ResizeSumFCNHead'))
