"""Shrink an mmdet detector config to test width, keeping its structure.

The config walker (tests/configs/test_every_config.py) trains every detector config for one
step; at full width a Cascade Mask R-CNN or HTC step takes seconds, so the neck and every head
are made ``width`` channels wide and fewer RoIs are sampled, while the types, stages, losses,
assigners and samplers stay as given.
Covers the two-stage detectors (RPN + RoI head: Faster/Mask R-CNN, Cascade (Mask) R-CNN with
lists of stage heads, HTC with its semantic branch) and single-stage ones (``bbox_head`` on the
neck: FCOS, RetinaNet, ...).
"""
from typing import Any, List, Sequence

from mmengine.config import ConfigDict


def _as_list(node: Any) -> List[ConfigDict]:
    if node is None:
        return []
    return list(node) if isinstance(node, (list, tuple)) else [node]


def narrow_detector(model: ConfigDict, specs: Sequence, width: int) -> None:
    """Narrow ``model`` (a detector's ``cfg.model``) in place.

    Args:
        model: the detector config; its neck reads the first ``len(neck.in_channels)`` backbone
            outputs.
        specs: the (narrowed) backbone's ``out_specs``.
        width: channels of the neck levels and of the two-stage heads' convs; fully connected
            layers and single-stage heads get ``2 * width``.
    """
    neck = model.neck
    neck.in_channels = [s.channels for s in specs[:len(neck.in_channels)]]
    neck.out_channels = width
    if model.get('rpn_head') is not None:
        model.rpn_head.update(in_channels=width, feat_channels=width)
    for head in _as_list(model.get('bbox_head')):      # single-stage detectors
        # 2 * width: FCOS's GroupNorm (32 groups by default) needs two channels per group on a
        # 1x1 level (stride 128 on the walker's 64x128 images).
        head.update(in_channels=width, feat_channels=2 * width)
    _fewer_rois(model)
    roi = model.get('roi_head')
    if roi is None:
        return
    for key in ('bbox_roi_extractor', 'mask_roi_extractor', 'semantic_roi_extractor'):
        for extractor in _as_list(roi.get(key)):
            extractor.out_channels = width
    for head in _as_list(roi.get('bbox_head')):
        head.update(in_channels=width, fc_out_channels=2 * width)
    for head in _as_list(roi.get('mask_head')):
        head.update(in_channels=width, conv_out_channels=width)
    if roi.get('semantic_head') is not None:
        roi.semantic_head.update(in_channels=width, conv_out_channels=width)


#: RoIs sampled per image and stage for training, and proposals kept (train and test): on the
#: walker's 64x128 images mmdet's 512 samples and 1000-2000 proposals are mostly duplicates, and
#: mmcv's CPU RoIAlign backward made one HTC step take 3 s (measured).
NUM_ROIS = 64


def _fewer_rois(model: ConfigDict) -> None:
    train, test = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    for stage in _as_list(train.get('rcnn')):
        stage.sampler.num = NUM_ROIS
    for proposals in (train.get('rpn_proposal'), test.get('rpn')):
        if proposals is not None:
            proposals.update(nms_pre=NUM_ROIS, max_per_img=NUM_ROIS)


def detector_num_classes(model: ConfigDict) -> int:
    """Object classes of a detector config (of its first stage for cascades)."""
    roi = model.get('roi_head')
    head = roi.bbox_head if roi is not None else model.bbox_head
    return _as_list(head)[0].num_classes


def detector_needs(model: ConfigDict) -> dict:
    """What a training batch must hold beyond boxes and labels: ``masks`` (a mask head) and
    ``semantic_classes`` (HTC's semantic branch: classes of its ``gt_sem_seg``, else None)."""
    roi = model.get('roi_head') or {}
    semantic = roi.get('semantic_head')
    return dict(masks=roi.get('mask_head') is not None,
                semantic_classes=None if semantic is None else semantic.num_classes)
