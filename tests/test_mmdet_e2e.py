"""End to end through MMDetection: convert the real Cityscapes frame to COCO, train a narrow
HRNetV2p Faster R-CNN with tools/train.py, evaluate it with tools/test.py and CocoMetric."""
import json
import pickle

from tests.helpers.detector_e2e import (REPO_ROOT, evaluate, frame_to_coco, mean_loss, train,
                                        write_narrow_config)

BASE_CONFIG = REPO_ROOT / 'configs' / 'mmdet' / 'faster-rcnn_hrnetv2p-w18_1x_coco.py'
MAX_ITERS = 60


def test_train_and_evaluate_on_real_frame(cityscapes_sample, tmp_path):
    ann_file = frame_to_coco(cityscapes_sample, tmp_path / 'annotations')
    num_gt = len(json.loads(ann_file.read_text())['annotations'])
    assert num_gt > 0

    config = write_narrow_config(tmp_path / 'faster-rcnn_hrnetv2p-narrow_cityscapes-frame.py',
                                 BASE_CONFIG, cityscapes_sample, ann_file, MAX_ITERS)
    work_dir = tmp_path / 'work'
    logs, train_time = train(config, work_dir, MAX_ITERS)
    first, last = mean_loss(logs, 'loss', True), mean_loss(logs, 'loss', False)
    print(f'train: {MAX_ITERS} iters in {train_time:.1f} s; loss first 5 mean {first:.3f}, '
          f'last 5 mean {last:.3f}')
    assert last < 0.7 * first
    # Both stages learn, not only one of them.
    for key in ('loss_rpn_cls', 'loss_cls'):
        assert mean_loss(logs, key, False) < mean_loss(logs, key, True), key

    checkpoint = work_dir / f'iter_{MAX_ITERS}.pth'
    assert checkpoint.is_file()
    out_pkl = tmp_path / 'dets.pkl'
    metrics, test_time = evaluate(config, checkpoint, tmp_path / 'test', out_pkl)
    mean_ap = metrics['coco/bbox_mAP']
    print(f'test: {test_time:.1f} s; bbox mAP {mean_ap:.3f}, '
          f'mAP_50 {metrics["coco/bbox_mAP_50"]:.3f}')
    assert 0.0 < mean_ap <= metrics['coco/bbox_mAP_50'] <= 1.0
    with open(out_pkl, 'rb') as f:
        dets = pickle.load(f)
    assert len(dets) == 1 and 0 < len(dets[0]['pred_instances']['bboxes']) <= 100
    # The network really ran on 250x500, unpadded (neither side a multiple of 32).
    assert tuple(dets[0]['batch_input_shape']) == (250, 500)
