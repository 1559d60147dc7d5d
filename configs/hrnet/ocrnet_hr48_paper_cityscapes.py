# OCRNet on HRNetV2-W48 with the PAPER's fusion (see hrnet_w48_paper_cityscapes.py and
# ocrnet_hr18_paper_cityscapes.py: same switch, same initialisation notes). Heads and recipe as
# in ocrnet_hr48_cityscapes.py.
_base_ = ['./ocrnet_hr48_cityscapes.py']

model = dict(backbone=dict(fusion_mode='paper'))
