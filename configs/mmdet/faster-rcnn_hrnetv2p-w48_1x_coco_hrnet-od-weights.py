# Faster R-CNN HRNetV2p-W48 with the weights published by HRNet-Object-Detection
# (faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth, trained with mmdetection v1).
# Source's own figure (NOT reproduced here): 40.9 box AP, COCO val2017, 1x schedule.
#
# Convert, then test with this config:
#   python tools/model_converters/convert.py hrnet-od \
#       faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth \
#       checkpoints/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od.pth
#
# Backbone and neck: the same weights give the original code's features (measured on the real
# frame, see the README). Heads: mmdetection v1 boxes use the "+1 pixel" convention; the legacy
# anchor generator / box coder and the +1 NMS below reproduce it, while mmcv's RoIAlign
# (aligned=False) pools over [x1, x2] where v1 pooled over [x1, x2 + 1] and mmdet 3 assigns RoIs
# to levels by sqrt(w * h) without the +1: boxes move a little (measured, README).
_base_ = './faster-rcnn_hrnetv2p-w48_1x_coco.py'

model = dict(
    # The converted checkpoint holds every weight: no ImageNet download.
    backbone=dict(init_cfg=None),
    rpn_head=dict(
        # Anchors centred at (stride - 1) / 2 with rounded corners, as in mmdetection v1.
        anchor_generator=dict(type='LegacyAnchorGenerator', center_offset=0.5),
        bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder')),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False)),
        bbox_head=dict(bbox_coder=dict(type='LegacyDeltaXYWHBBoxCoder'))),
    test_cfg=dict(
        # mmdetection v1's RPN test: 1000 boxes per level before NMS, 1000 kept, no size filter
        # (min_bbox_size=0 there kept zero-width boxes; -1 here disables the filter), +1 IoU.
        rpn=dict(nms_pre=1000, max_per_img=1000, min_bbox_size=-1,
                 nms=dict(type='nms', iou_threshold=0.7, offset=1)),
        rcnn=dict(score_thr=0.05, max_per_img=100,
                  nms=dict(type='nms', iou_threshold=0.5, offset=1))))

load_from = 'checkpoints/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od.pth'
