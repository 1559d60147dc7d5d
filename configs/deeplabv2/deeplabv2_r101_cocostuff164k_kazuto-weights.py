# DeepLabv2 ResNet-101 (ASPP-L, MSC) trained on COCO-Stuff 164k train2017 by
# kazuto1011/deeplab-pytorch (deeplabv2_resnet101_msc-cocostuff164k-100000.pth, 182 outputs),
# converted to our keys with
#   python tools/model_converters/convert.py deeplab-kazuto \
#       deeplabv2_resnet101_msc-cocostuff164k-100000.pth \
#       checkpoints/deeplabv2_r101_cocostuff164k_kazuto.pth
#   python tools/test.py configs/deeplabv2/deeplabv2_r101_cocostuff164k_kazuto-weights.py \
#       checkpoints/deeplabv2_r101_cocostuff164k_kazuto.pth
# Published figure (the SOURCE's own, not reproduced by us): 39.1 mIoU on COCO-Stuff 164k val2017
# with MSC, before CRF; 39.7 with its CRF (kazuto1011/deeplab-pytorch README).
#
# The network and its test are those of deeplabv2_r101_voc12aug_kazuto-weights.py (Caffe BGR
# mean, no std; caffe-style strides, ceil-mode stem pool; MSC 1/0.75/0.5 max-fused; images at
# their own size); the dense CRF is OFF by default (--crf or model.crf.enabled=True; the source's
# cocostuff164k.yaml uses the same CRF values as for VOC).
#
# Classes and labels: the model has 182 outputs, the COCO-Stuff ids 0..181 (91 thing ids, 11 of
# them unused by the dataset, then 91 stuff ids), as the raw COCO-Stuff label PNGs hold them
# (stuffthingmaps_trainval2017: pixel = id, 255 unlabeled). So the data here are those PNGs
# (data/coco_stuff164k/annotations/{train,val}2017/<image id>.png), read without mmseg's
# 171-class *_labelTrainIds.png conversion; the 11 unused ids never occur in the labels and are
# left out of the mean IoU by mmseg's IoUMetric unless predicted (a class with neither
# label nor predicted pixels has a NaN IoU, skipped by the mean, as in the source's scores).
# Everything about the network, its preprocessing, MSC and CRF is inherited from the VOC config;
# this file changes the data (COCO-Stuff 164k, 513x513 crops), the class count and the schedule.
_base_ = ['./deeplabv2_r101_voc12aug_kazuto-weights.py']
crop_size = (513, 513)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, decode_head=dict(num_classes=182))

# COCO-Stuff ids 0..181 in order (the source's data/datasets/cocostuff/labels.txt).
cocostuff_182_classes = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
    'boat', 'traffic light', 'fire hydrant', 'street sign', 'stop sign', 'parking meter', 'bench', 'bird',
    'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
    'giraffe', 'hat', 'backpack', 'umbrella', 'shoe', 'eye glasses', 'handbag', 'tie',
    'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove',
    'skateboard', 'surfboard', 'tennis racket', 'bottle', 'plate', 'wine glass', 'cup', 'fork',
    'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli',
    'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'mirror', 'dining table', 'window', 'desk', 'toilet', 'door', 'tv',
    'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster',
    'sink', 'refrigerator', 'blender', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush', 'hair brush', 'banner', 'blanket', 'branch', 'bridge', 'building-other',
    'bush', 'cabinet', 'cage', 'cardboard', 'carpet', 'ceiling-other', 'ceiling-tile', 'cloth',
    'clothes', 'clouds', 'counter', 'cupboard', 'curtain', 'desk-stuff', 'dirt', 'door-stuff',
    'fence', 'floor-marble', 'floor-other', 'floor-stone', 'floor-tile', 'floor-wood', 'flower', 'fog',
    'food-other', 'fruit', 'furniture-other', 'grass', 'gravel', 'ground-other', 'hill', 'house',
    'leaves', 'light', 'mat', 'metal', 'mirror-stuff', 'moss', 'mountain', 'mud',
    'napkin', 'net', 'paper', 'pavement', 'pillow', 'plant-other', 'plastic', 'platform',
    'playingfield', 'railing', 'railroad', 'river', 'road', 'rock', 'roof', 'rug',
    'salad', 'sand', 'sea', 'shelf', 'sky-other', 'skyscraper', 'snow', 'solid-other',
    'stairs', 'stone', 'straw', 'structural-other', 'table', 'tent', 'textile-other', 'towel',
    'tree', 'vegetable', 'wall-brick', 'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone', 'wall-tile',
    'wall-wood', 'water-other', 'waterdrops', 'window-blind', 'window-other', 'wood')
dataset_meta = dict(classes=cocostuff_182_classes)
data_root = 'data/coco_stuff164k'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
dataset_type = 'BaseSegDataset'
coco_stuff = dict(type=dataset_type, data_root=data_root, metainfo=dataset_meta,
                  img_suffix='.jpg', seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=5,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True, **coco_stuff, pipeline=train_pipeline,
        data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017')))
val_dataloader = dict(
    batch_size=1,
    dataset=dict(
        _delete_=True, **coco_stuff, pipeline={{_base_.test_pipeline}},
        data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')))
test_dataloader = val_dataloader

# The source's schedule: 100k iterations of 10 images, SGD lr 2.5e-4 (ASPP x10), momentum 0.9,
# weight decay 5e-4, poly 0.9 (its cocostuff164k.yaml); 2 GPUs x 5 images here.
# (The optimizer, lr x10 on the head and the batch of 10 are the VOC config's.)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=100000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=100000, val_interval=10000)
# A checkpoint at every validation (the VOC base saves every 2000 iterations).
default_hooks = dict(checkpoint=dict(interval=10000))
