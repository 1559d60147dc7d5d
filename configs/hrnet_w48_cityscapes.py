# HRNetV2-W48 + FCN head on Cityscapes, 512x1024 crops: mmseg's fcn_hr48 80k recipe
# (fcn_hr48_4xb2-80k_cityscapes-512x1024): SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly
# decay to 1e-4 over 80k iterations, 2 images per GPU on 4 GPUs (batch 8), SyncBN.
# mmseg reports 79.93 mIoU (single scale) for this recipe; 65.8587M parameters.
#
#   bash tools/dist_train.sh configs/hrnet_w48_cityscapes.py 4
#
# ImageNet initialisation: place the ImageNet HRNet-W48 weights at
#   checkpoints/hrnetv2_w48_imagenet.pth   (relative to the working directory)
# either mmseg's `open-mmlab://msra/hrnetv2_w48` file (hrnetv2_w48-d2186c55.pth, from the mmseg
# model zoo) or the official HRNet-Image-Classification release
# (hrnetv2_w48_imagenet_pretrained.pth), renamed. Both use the backbone key names of
# mmseg_hrplus.HRNet; the classifier keys of the official file are reported as unexpected and
# ignored. Without the file, set model.backbone.init_cfg=None to train from scratch.
_base_ = [
    './_base_/models/hrnet_fcn.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)

crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
widths = [48, 96, 192, 384]
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='w48',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/hrnetv2_w48_imagenet.pth')),
    decode_head=dict(in_channels=widths, channels=sum(widths)))
