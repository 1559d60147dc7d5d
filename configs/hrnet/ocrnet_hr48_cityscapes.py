# OCRNet on HRNetV2-W48, Cityscapes 512x1024 crops, 80k: mmseg's
# ocrnet_hr48_4xb2-80k_cityscapes-512x1024 (recipe, data, heads: in_channels [48, 96, 192, 384])
# with its HRNet replaced by mmseg_hrplus.HRNet (official fusion, mmseg's parameter names, so
# its checkpoints load unchanged). mmseg reports 80.70 mIoU (single scale) for it.
# Model structure as in ocrnet_hr18_cityscapes.py; ocrnet_hr48_paper_cityscapes.py is the paper
# fusion. ImageNet initialisation: open-mmlab://msra/hrnetv2_w48.
_base_ = ['mmseg::ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNet',
        arch='w48',
        fusion_mode='official',
        upsample_mode='bilinear',
        align_corners=False,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w48')))
