# OCRNet on HRNetV2-W18-Small (arch 'w18_small', the official W18-Small-v2), Cityscapes
# 512x1024 crops, 80k: mmseg's ocrnet_hr18s_4xb2-80k_cityscapes-512x1024 with its HRNet
# replaced by mmseg_hrplus.HRNet (official fusion, mmseg's parameter names). mmseg reports 77.16
# mIoU (single scale) for it. mmseg's hr18s config changes only the backbone of its hr18 one, so
# this inherits heads and recipe from ocrnet_hr18_cityscapes.py. Paper fusion: add
# model.backbone.fusion_mode='paper' (as ocrnet_hr18_paper_cityscapes.py does).
# ImageNet initialisation: open-mmlab://msra/hrnetv2_w18_small.
_base_ = ['./ocrnet_hr18_cityscapes.py']

model = dict(
    backbone=dict(
        arch='w18_small',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w18_small')))
