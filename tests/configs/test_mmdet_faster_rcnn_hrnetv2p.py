"""configs/mmdet/faster-rcnn_hrnetv2p-*: parameter counts and parity with mmdet's own detector."""
import pytest
import torch

from tests.helpers.mmdet_helpers import (assert_equal_features, build_detector, count_parameters,
                           frame_batch, mmdet_config, our_config, same_weight_detectors)

THEIRS = {'w18': 'faster-rcnn_hrnetv2p-w18-1x_coco.py',
          'w32': 'faster-rcnn_hrnetv2p-w32-1x_coco.py',
          'w40': 'faster-rcnn_hrnetv2p-w40-1x_coco.py'}
WIDTHS = {'w18': 18, 'w32': 32, 'w40': 40, 'w48': 48}


pytestmark = pytest.mark.usefixtures('one_thread')


_build = build_detector      # no download; random init is enough here


def _ours(arch: str):
    return our_config(f'faster-rcnn_hrnetv2p-{arch}_1x_coco.py')


def _theirs(arch: str):
    return mmdet_config(THEIRS[arch])


_count = count_parameters


@pytest.mark.parametrize('arch', ['w18', 'w32', 'w40', 'w48'])
def test_config_builds_and_matches_mmdet_parameter_count(arch):
    cfg = _ours(arch)
    w = WIDTHS[arch]
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
    assert cfg.model.type == 'FasterRCNN'
    assert cfg.model.backbone.type == 'mmseg_hrplus.HRNet' and cfg.model.backbone.arch == arch
    assert cfg.model.backbone.upsample_mode == 'nearest' and cfg.model.backbone.norm_eval
    assert cfg.model.backbone.init_cfg.checkpoint == f'open-mmlab://msra/hrnetv2_w{w}'
    assert cfg.model.neck.type == 'mmseg_hrplus.HRNetV2pNeck'
    assert cfg.model.neck.in_channels == [w, 2 * w, 4 * w, 8 * w]
    model = _build(cfg)
    assert type(model.backbone).__module__ == 'mmseg_hrplus.models.backbones.hrnet'
    assert type(model.neck).__name__ == 'HRNetV2pNeck'
    # The neck agrees with what the backbone declares it returns.
    specs = model.neck.check_inputs(model.backbone.out_specs)
    assert [s.stride for s in specs] == [4, 8, 16, 32, 64]
    assert model.rpn_head.prior_generator.strides == [(s.stride, s.stride) for s in specs]
    count = _count(model)
    print(f'{arch}: {count} parameters ({count / 1e6:.4f}M)')
    if arch in THEIRS:      # mmdet ships no W48 detector
        assert count == _count(_build(_theirs(arch)))
    if arch == 'w32':
        assert round(count / 1e6, 4) == 47.2797


def test_w32_parity_with_mmdet_detector(cityscapes_sample):
    ref_cfg, our_cfg = _theirs('w32'), _ours('w32')
    for cfg in (ref_cfg, our_cfg):
        # Random heads score every class near 1/81: keep all boxes so there is something to compare.
        cfg.model.test_cfg.rcnn.score_thr = 0.0
    ref, ours = same_weight_detectors(ref_cfg, our_cfg)

    data = frame_batch(ref, cityscapes_sample)     # 128x256: sides multiples of 32
    inputs, samples = data['inputs'], data['data_samples']

    # Our backbone and neck run mmdet's ops in mmdet's order (same weights, same kernels), so
    # features, proposals and detections are bit for bit equal, on any CPU.
    feats_ref, feats_ours = assert_equal_features(ref, ours, inputs)
    assert len(feats_ours) == 5
    with torch.no_grad():
        props_ref = ref.rpn_head.predict(feats_ref, samples, rescale=False)[0]
        props_ours = ours.rpn_head.predict(feats_ours, samples, rescale=False)[0]
        assert len(props_ours) == len(props_ref) > 0
        print(f'RPN proposals: {len(props_ref)}')
        assert torch.equal(props_ref.bboxes, props_ours.bboxes)
        assert torch.equal(props_ref.scores, props_ours.scores)

        det_ref = ref.predict(inputs, samples, rescale=False)[0].pred_instances
        det_ours = ours.predict(inputs, samples, rescale=False)[0].pred_instances
        assert len(det_ours) == len(det_ref) > 0
        print(f'final boxes: {len(det_ref)}')
        assert torch.equal(det_ref.labels, det_ours.labels)
        assert torch.equal(det_ref.bboxes, det_ours.bboxes)
        assert torch.equal(det_ref.scores, det_ours.scores)
