# HRNetV2-W48 + FCN head on Cityscapes, 512x1024 crops: mmseg's fcn_hr48 80k recipe
# (fcn_hr48_4xb2-80k_cityscapes-512x1024): SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly
# decay to 1e-4 over 80k iterations, 2 images per GPU on 4 GPUs (batch 8), SyncBN.
# mmseg reports 79.93 mIoU (single scale) for this recipe; 65.8587M parameters.
#
#   bash tools/dist_train.sh configs/hrnet_w48_cityscapes.py 4
#
# ImageNet initialisation: `open-mmlab://msra/hrnetv2_w48`, the name mmseg's fcn_hr48 configs
# use (model.pretrained there; the same file through backbone.init_cfg here), i.e.
# https://download.openmmlab.com/pretrain/third_party/hrnetv2_w48-d2186c55.pth, downloaded once
# into torch's hub cache and read by mmseg_hrplus's safe reader. Offline, point `checkpoint` at
# a local copy; the official HRNet-Image-Classification file
# (hrnetv2_w48_imagenet_pretrained.pth) converts to one without its classification modules:
#   python tools/model_converters/convert.py hrnet-imagenet \
#       hrnetv2_w48_imagenet_pretrained.pth checkpoints/hrnetv2_w48_imagenet_official.pth
# To train from scratch set model.backbone.init_cfg=None.
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
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w48')),
    decode_head=dict(in_channels=widths, channels=sum(widths)))
