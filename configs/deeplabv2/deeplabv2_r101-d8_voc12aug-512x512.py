# DeepLabv2 ResNet-101 (output stride 8, ASPP-L) on PASCAL VOC 2012 + SBD ("trainaug").
#
# Recipe and where each number comes from:
# - SGD, momentum 0.9, weight decay 5e-4, "poly" policy with power 0.9: paper, Sec. 4.1.
# - 20k iterations with a batch of 10 images: paper, Table 1 (the best "poly" setting) and the
#   authors' released ResNet-101 solver (batch 1 x iter_size 10, max_iter 20000).
# - base lr 2.5e-4, classifier (ASPP) lr x10: the authors' released ResNet-101 solver and
#   prototxt (lr_mult 10 on the fc1_voc12_c* layers). The Caffe prototxt also gives the
#   classifier bias lr x20 and no weight decay; here the whole head uses lr x10.
# - Not reproduced: the paper's 321x321 crops (we use mmseg's 512x512 VOC pipeline), multi-scale
#   input training (MSC), MS-COCO pre-training and the dense CRF. Reported numbers: 76.35 mIoU
#   VOC val for ResNet-101 + ASPP-L before CRF (with MSC and COCO), 79.7 VOC test with all of it.
#
# Data (mmseg's pascal_voc12_aug base): data/VOCdevkit/VOC2012 with JPEGImages,
# SegmentationClass, ImageSets/Segmentation/{train,val}.txt (VOC 2012) PLUS the SBD
# annotations converted by mmseg's tools/dataset_converters/voc_aug.py, which writes
# SegmentationClassAug/ and ImageSets/Segmentation/aug.txt. The base concatenates train.txt
# and aug.txt (10582 images with SBD) and validates on the 1449 val images; 21 classes.
_base_ = [
    '../_base_/models/deeplabv2_r101-d8.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, decode_head=dict(num_classes=21))

# The paper's batch of 10: 2 GPUs x 5 images. With another GPU count pass
# --cfg-options auto_scale_lr.enable=True (linear lr scaling from base_batch_size) or keep
# 10 images in total.
train_dataloader = dict(batch_size=5)
auto_scale_lr = dict(enable=False, base_batch_size=10)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.0)}),
    clip_grad=None)
param_scheduler = [
    # Caffe's poly decays to exactly 0 at max_iter.
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=20000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
