# Faster R-CNN HRNetV2p-W48 with the weights published by HRNet-Object-Detection
# (faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth, trained with mmdetection v1).
# Source's own figure (NOT reproduced here): 40.9 box AP, COCO val2017, 1x schedule.
#
# Convert with `load_from_command` below (nothing downloads the source file: HRNet-OD
# publishes it on OneDrive/Baidu only; a run without the converted file stops at once naming
# that command), then test with this config:
#   python tools/test.py configs/mmdet/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od-weights.py \
#       checkpoints/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od.pth
#
# Measured against HRNet-Object-Detection's own code (commit 3493751; its CUDA nms/roi_align
# replaced by CPU equivalents), same random W48 weights, the real frame at 1333x667:
# - backbone, neck and RPN outputs: identical (max |diff| 0);
# - mmdetection v1 boxes use the "+1 pixel" convention. The legacy anchor generator, box coder,
#   RoIAlign(aligned=False) and +1 NMS below follow it, except that mmdet 3's legacy coder leaves
#   out v1's +-0.5 (boxes 0.5 px wider per side and stage; mmdet reports +0.5 AP for v1 models
#   with it) and RoIAlign pools [x1, x2] where v1 pooled [x1, x2 + 1]. Boxes move: proposals
#   948/1000 matched (IoU >= 0.5), median shift 0.5 px; detections 98/100 matched with the same
#   class, 88 within 2 px (median 1.0 px), mean IoU 0.94, scores within 0.037.
#   mmdet 3's default heads (the plain W48 config) move them more: 85/100, median 8.2 px.
#   With the +-0.5 and [x1, x2 + 1] put back (in the measuring script only) the outputs are
#   identical (<= 1.2e-4 px), so the conversion itself, class order included, is exact.
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
load_from_command = ('python tools/model_converters/convert.py hrnet-od '
                     'faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth ' + load_from)
custom_hooks = [dict(type='RequireConvertedCheckpointsHook', files={load_from: load_from_command})]
