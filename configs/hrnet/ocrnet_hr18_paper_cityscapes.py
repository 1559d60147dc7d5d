# OCRNet on HRNetV2-W18 with the PAPER's fusion (see hrnet_w48_paper_cityscapes.py): upsample
# then 1x1 conv + BN on every lower-to-higher path, and the new stream of stages 3 and 4 made by
# the fusion from all existing streams. Heads and recipe as in ocrnet_hr18_cityscapes.py. The
# ImageNet weights (official fusion) load into every shared part; the new-stream fusion rows
# (stage2.0.fuse_layers.2, stage3.3.fuse_layers.3) start from the default init and the official
# transition2.2 / transition3.3 weights are ignored, so mmseg's ocrnet_hr18 checkpoints do not
# load strictly into this model.
_base_ = ['./ocrnet_hr18_cityscapes.py']

model = dict(backbone=dict(fusion_mode='paper'))
