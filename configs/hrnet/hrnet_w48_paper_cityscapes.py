# HRNetV2-W48 + FCN head on Cityscapes with the PAPER's fusion: upsample then 1x1 conv + BN
# in every lower-to-higher path, and the new stream of stages 3 and 4 made by the fusion from
# all existing streams (instead of one strided conv from the lowest). Same recipe as
# ../hrnet_w48_cityscapes.py. The ImageNet weights (official fusion) load into every shared
# part; only the new-stream fusion rows (stage2.0.fuse_layers.2, stage3.3.fuse_layers.3) start
# from the default init, and the official transition2.2 / transition3.3 weights are ignored.
_base_ = ['../hrnet_w48_cityscapes.py']

model = dict(backbone=dict(fusion_mode='paper'))
