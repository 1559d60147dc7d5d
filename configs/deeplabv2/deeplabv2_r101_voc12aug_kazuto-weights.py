# DeepLabv2 ResNet-101 (ASPP-L, MSC) with the weights of kazuto1011/deeplab-pytorch: the authors'
# Caffe model for PASCAL VOC 2012 trainaug, converted to PyTorch by that project
# (deeplabv2_resnet101_msc-vocaug-20000.pth, 21 classes), converted to our keys with
#   python tools/model_converters/convert.py deeplab-kazuto \
#       deeplabv2_resnet101_msc-vocaug-20000.pth checkpoints/deeplabv2_r101_voc12aug_kazuto.pth
#   python tools/test.py configs/deeplabv2/deeplabv2_r101_voc12aug_kazuto-weights.py \
#       checkpoints/deeplabv2_r101_voc12aug_kazuto.pth
# Published figure (the SOURCE's own, not reproduced by us): 76.65 mIoU on VOC 2012 val with
# MSC, before CRF; 77.93 with its CRF (kazuto1011/deeplab-pytorch README). The paper reports
# 76.35 / 77.69 for the same Caffe model.
#
# With the converted file this model is the original network, evaluated as the original does:
# - Caffe preprocessing: BGR image (as loaded) minus the mean (104.008, 116.669, 122.675), no std;
# - backbone: the stride in the first 1x1 conv of a block (style='caffe'), stem max-pool with
#   ceil_mode (Caffe pooling), BN eps 1e-5, dilation 2/4 in every block of res4/res5;
# - ASPP-L: four biased 3x3 convs (rates 6, 12, 18, 24), logits summed;
# - MSC at test: scales 1, 0.75, 0.5, logits max-fused on the scale-1 logit grid
#   (mmseg_hrplus.MSCEncoderDecoder);
# - val images at their own size (no resize), batch 1.
# Dense CRF (mmseg_hrplus.WithDenseCRF): OFF by default (the figure above is before CRF, and it
# costs seconds per image on a CPU). Switch it on with `--crf` (tools/test.py, tools/infer.py) or
# --cfg-options model.crf.enabled=True; it needs `pip install -e .[crf]` (pydensecrf2). Its
# parameters below are those of the source's voc12.yaml (the authors' released test settings).
#
# Training with this config starts from the authors' COCO-pretrained init file (kazuto's
# deeplabv1_resnet101-coco.pth, which that project's convert.py writes from the authors'
# init.caffemodel) converted to our keys by `coco_init_command` below; nothing downloads it, and
# a run without it stops at once naming that command (mmseg_hrplus.RequireConvertedCheckpointsHook).
# Training otherwise follows deeplabv2_r101-d8_voc12aug-512x512.py (mmseg's 512x512 crops and
# single-scale loss, not the original's 321x321 multi-scale-loss training).
_base_ = ['./deeplabv2_r101-d8_voc12aug-512x512.py']

coco_init = 'checkpoints/deeplabv1_resnet101_coco_kazuto-init.pth'
coco_init_command = ('python tools/model_converters/convert.py deeplab-kazuto '
                     f'deeplabv1_resnet101-coco.pth {coco_init}')
custom_hooks = [dict(type='RequireConvertedCheckpointsHook', files={coco_init: coco_init_command})]

caffe_mean_bgr = [104.008, 116.669, 122.675]
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=caffe_mean_bgr,
    std=[1.0, 1.0, 1.0],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
dense_crf = dict(
    enabled=False,
    iterations=10,
    gaussian_sxy=1,
    gaussian_weight=3,
    bilateral_sxy=67,
    bilateral_srgb=3,
    bilateral_weight=4)
model = dict(
    type='mmseg_hrplus.WithDenseCRF',
    segmentor_type='mmseg_hrplus.MSCEncoderDecoder',
    msc_scales=(1.0, 0.75, 0.5),
    crf=dense_crf,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        style='caffe',
        stem_pool_ceil_mode=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=coco_init)),
    decode_head=dict(num_classes=21),
    test_cfg=dict(mode='whole'))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
