"""End to end through MMDetection with masks: the real Cityscapes frame as COCO json with RLE
instance masks, a narrow HRNetV2p Mask R-CNN (our mask-rcnn_hrnetv2p-w18 config, narrowed)
trained with tools/train.py and evaluated with tools/test.py and CocoMetric bbox + segm."""
import json
import math
import pickle
import time

import numpy as np

from tests.helpers.detector_e2e import (REPO_ROOT, evaluate, frame_to_coco, mean_loss, train,
                                        write_narrow_config)

BASE_CONFIG = REPO_ROOT / 'configs' / 'mmdet' / 'mask-rcnn_hrnetv2p-w18_1x_coco.py'
MAX_ITERS = 60


def test_coco_json_masks_load_in_mmdet(cityscapes_sample, tmp_path):
    """The converter's RLE ``segmentation`` reaches mmdet's pipeline as one bitmap per box."""
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ann_file = frame_to_coco(cityscapes_sample, tmp_path)
    anns = json.loads(ann_file.read_text())['annotations']
    assert all(isinstance(a['segmentation'], dict) for a in anns)     # RLE, not polygons
    dataset = CocoDataset(ann_file=str(ann_file), data_root=str(cityscapes_sample),
                          data_prefix=dict(img='leftImg8bit/val/'), lazy_init=True,
                          metainfo=dict(classes=('person', 'rider', 'car', 'truck', 'bus',
                                                 'train', 'motorcycle', 'bicycle')))
    info = dataset.get_data_info(0)
    hw = (info['height'], info['width'])     # the frame as stored: 128x256
    results = LoadAnnotations(with_bbox=True, with_mask=True)(dict(info, ori_shape=hw))
    masks, boxes = results['gt_masks'], results['gt_bboxes'].tensor.numpy()
    assert len(masks) == len(boxes) == len(anns) > 0
    bitmaps = masks.to_ndarray()
    assert bitmaps.shape == (len(anns), ) + hw == (len(anns), 128, 256)
    for bitmap, box, ann in zip(bitmaps, boxes, anns):
        assert int(bitmap.sum()) == ann['area']
        ys, xs = np.nonzero(bitmap)      # the box is the mask's tight extent
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.round().tolist()


def test_train_and_evaluate_masks_on_real_frame(cityscapes_sample, tmp_path):
    start = time.perf_counter()
    ann_file = frame_to_coco(cityscapes_sample, tmp_path / 'annotations')
    config = write_narrow_config(tmp_path / 'mask-rcnn_hrnetv2p-narrow_cityscapes-frame.py',
                                 BASE_CONFIG, cityscapes_sample, ann_file, MAX_ITERS, masks=True)
    work_dir = tmp_path / 'work'
    logs, train_time = train(config, work_dir, MAX_ITERS)
    first, last = mean_loss(logs, 'loss', True), mean_loss(logs, 'loss', False)
    mask_first, mask_last = mean_loss(logs, 'loss_mask', True), mean_loss(logs, 'loss_mask', False)
    print(f'train: {MAX_ITERS} iters in {train_time:.1f} s; loss first/last 5 mean '
          f'{first:.3f}/{last:.3f}, loss_mask {mask_first:.3f}/{mask_last:.3f}')
    assert last < 0.7 * first
    # Every stage learns, the mask head included.
    for key in ('loss_rpn_cls', 'loss_cls', 'loss_mask'):
        assert mean_loss(logs, key, False) < mean_loss(logs, key, True), key

    out_pkl = tmp_path / 'dets.pkl'
    metrics, test_time = evaluate(config, work_dir / f'iter_{MAX_ITERS}.pth',
                                  tmp_path / 'test', out_pkl)
    keys = [f'coco/{kind}_mAP{suffix}' for kind in ('bbox', 'segm') for suffix in ('', '_50')]
    print(f'test: {test_time:.1f} s; ' + ', '.join(f'{k} {metrics[k]:.3f}' for k in keys)
          + f'; total {time.perf_counter() - start:.1f} s')
    for key in keys:
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
        assert 0.0 <= metrics[key] <= 1.0, key
    for kind in ('bbox', 'segm'):
        assert 0.0 < metrics[f'coco/{kind}_mAP'] <= metrics[f'coco/{kind}_mAP_50'], kind
    with open(out_pkl, 'rb') as f:
        (det, ) = pickle.load(f)
    pred = det['pred_instances']
    # Masks come back as RLE at the frame's resolution (128x256; the net ran at 250x500).
    assert 0 < len(pred['bboxes']) == len(pred['masks']) <= 100
    assert tuple(pred['masks'][0]['size']) == (128, 256)
