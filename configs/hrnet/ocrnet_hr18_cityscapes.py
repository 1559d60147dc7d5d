# OCRNet (object-contextual representations) on HRNetV2-W18, Cityscapes 512x1024 crops, 80k:
# mmseg's ocrnet_hr18_4xb2-80k_cityscapes-512x1024 (recipe, data, heads) with its HRNet
# replaced by mmseg_hrplus.HRNet. mmseg reports 78.57 mIoU (single scale) for it.
#
# The model is mmseg's CascadeEncoderDecoder with two stages: an FCNHead (soft object regions,
# loss weight 0.4) and an OCRHead (loss weight 1.0). Both read the four HRNet streams resized to
# 1/4 and concatenated (in_index 0-3, resize_concat); the OCRHead also takes the FCNHead's
# logits. The backbone uses the official fusion and mmseg's parameter names, so the model has
# mmseg's parameter count and its ocrnet_hr18 checkpoints load unchanged
# (tests/configs/test_ocrnet_configs.py). ocrnet_hr18_paper_cityscapes.py is the paper fusion.
#
# ImageNet initialisation: open-mmlab://msra/hrnetv2_w18, the file of mmseg's model.pretrained
# (given here through backbone.init_cfg; see ../hrnet_w48_cityscapes.py for offline use).
_base_ = ['mmseg::ocrnet/ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNet',
        arch='w18',
        fusion_mode='official',
        upsample_mode='bilinear',
        align_corners=False,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w18')))
