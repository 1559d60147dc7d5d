"""configs/mmdet/{mask-rcnn,cascade-rcnn,cascade-mask-rcnn,htc,fcos}_hrnetv2p-*: each is mmdet's
HRNet config with our backbone and neck, has mmdet's parameters, and computes mmdet's features.

Parameter names, shapes and counts are compared on the ``meta`` device (module structure and
shapes, no memory, no init): 0.3-1 s a detector, where building the 35 full-size detectors on
the CPU took 1-8 s each on the busy 2-core machine (measured). The parity tests build W18 on the
CPU with real weights.
"""
import copy
from functools import lru_cache

import pytest
import torch

from tests.helpers.mmdet_helpers import (OUR_CONFIGS, assert_equal_features, build_detector,
                           count_parameters, frame_batch, mmdet_config, our_config,
                           same_weight_detectors, without_scope_keys)

ARCHS = ('w18', 'w32', 'w40', 'w48')
#: detector -> (our file name pattern, mmdet's file per width). mmdet has no W48 detector, and
#: its only FCOS W40 config is the multi-scale 2x one (same model as our 1x).
DETECTORS = {
    'mask-rcnn': ('mask-rcnn_hrnetv2p-{}_1x_coco.py', {
        'w18': 'mask-rcnn_hrnetv2p-w18-1x_coco.py',
        'w32': 'mask-rcnn_hrnetv2p-w32-1x_coco.py',
        'w40': 'mask-rcnn_hrnetv2p-w40_1x_coco.py'}),
    'cascade-rcnn': ('cascade-rcnn_hrnetv2p-{}_20e_coco.py', {
        'w18': 'cascade-rcnn_hrnetv2p-w18-20e_coco.py',
        'w32': 'cascade-rcnn_hrnetv2p-w32-20e_coco.py',
        'w40': 'cascade-rcnn_hrnetv2p-w40-20e_coco.py'}),
    'cascade-mask-rcnn': ('cascade-mask-rcnn_hrnetv2p-{}_20e_coco.py', {
        'w18': 'cascade-mask-rcnn_hrnetv2p-w18_20e_coco.py',
        'w32': 'cascade-mask-rcnn_hrnetv2p-w32_20e_coco.py',
        'w40': 'cascade-mask-rcnn_hrnetv2p-w40-20e_coco.py'}),
    'htc': ('htc_hrnetv2p-{}_20e_coco.py', {
        'w18': 'htc_hrnetv2p-w18_20e_coco.py',
        'w32': 'htc_hrnetv2p-w32_20e_coco.py',
        'w40': 'htc_hrnetv2p-w40_20e_coco.py'}),
    'fcos': ('fcos_hrnetv2p-{}-gn-head_4xb4-1x_coco.py', {
        'w18': 'fcos_hrnetv2p-w18-gn-head_4xb4-1x_coco.py',
        'w32': 'fcos_hrnetv2p-w32-gn-head_4xb4-1x_coco.py',
        'w40': 'fcos_hrnetv2p-w40-gn-head_ms-640-800-4xb4-2x_coco.py'}),
}
CASES = [(det, arch) for det in DETECTORS for arch in ARCHS]
CASE_IDS = [f'{det}-{arch}' for det, arch in CASES]

pytestmark = pytest.mark.usefixtures('one_thread')


def _ours(det: str, arch: str):
    return copy.deepcopy(_read_ours(det, arch))


def _reference(det: str, arch: str):
    return copy.deepcopy(_read_reference(det, arch))


@lru_cache(maxsize=None)       # each file is read once for the two tests (~0.3 s a read)
def _read_ours(det: str, arch: str):
    return our_config(DETECTORS[det][0].format(arch))


@lru_cache(maxsize=None)
def _read_reference(det: str, arch: str):
    """mmdet's config for ``arch``; for W48, mmdet's W32 recipe with the W48 widths (what our
    W48 configs claim to be)."""
    theirs = DETECTORS[det][1]
    if arch in theirs:
        return mmdet_config(theirs[arch])
    cfg = mmdet_config(theirs['w32'])
    w = int(arch[1:])
    for stage in (2, 3, 4):
        cfg.model.backbone.extra[f'stage{stage}'].num_channels = tuple(
            w * 2**k for k in range(stage))
    cfg.model.neck.in_channels = [w, 2 * w, 4 * w, 8 * w]
    cfg.model.backbone.init_cfg.checkpoint = f'open-mmlab://msra/hrnetv2_{arch}'
    return cfg


@pytest.mark.parametrize('det, arch', CASES, ids=CASE_IDS)
def test_config_is_mmdets_with_our_backbone_and_neck(det, arch):
    ours, ref = _ours(det, arch), _reference(det, arch)
    w = int(arch[1:])
    assert ours.default_scope == 'mmdet'
    assert ours.custom_imports == dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
    backbone, neck = ours.model.backbone, ours.model.neck
    assert backbone.type == 'mmseg_hrplus.HRNet' and backbone.arch == arch
    assert backbone.upsample_mode == 'nearest' and backbone.norm_eval is True
    assert backbone.norm_cfg == dict(type='BN', requires_grad=True)
    assert 'extra' not in backbone        # the preset, not a copy of its stages
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'open-mmlab://msra/hrnetv2_w{w}')
    assert backbone.init_cfg == without_scope_keys(ref.model.backbone.init_cfg)
    # The neck takes HRFPN's settings (HRFPN's defaults where mmdet's config leaves them out).
    assert neck.type == 'mmseg_hrplus.HRNetV2pNeck'
    assert neck.in_channels == ref.model.neck.in_channels == [w, 2 * w, 4 * w, 8 * w]
    assert neck.out_channels == ref.model.neck.out_channels == 256
    assert neck.get('stride', 1) == ref.model.neck.get('stride', 1) == (2 if det == 'fcos' else 1)
    assert neck.num_outs == ref.model.neck.get('num_outs', 5) == 5

    # Everything else is mmdet's: model (data preprocessor, heads, train/test settings) and,
    # where mmdet has this very recipe, data, schedule and runtime.
    def rest(node, drop):
        plain = without_scope_keys(node)
        return {k: v for k, v in plain.items() if k not in drop}
    assert rest(ours.model, {'backbone', 'neck'}) == rest(ref.model, {'backbone', 'neck'})
    if not (det == 'fcos' and arch == 'w40'):     # mmdet's W40 FCOS is multi-scale 2x
        assert rest(ours._cfg_dict, {'model', 'custom_imports'}) == \
            rest(ref._cfg_dict, {'model'})


@pytest.mark.parametrize('det, arch', CASES, ids=CASE_IDS)
def test_parameters_are_mmdets(det, arch):
    ours = build_detector(_ours(det, arch), 'meta')
    ref = build_detector(_reference(det, arch), 'meta')
    assert type(ours.backbone).__module__ == 'mmseg_hrplus.models.backbones.hrnet'
    assert type(ours.neck).__name__ == 'HRNetV2pNeck'
    # Same names and shapes, so mmdet's checkpoints load with strict=True.
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    count = count_parameters(ours)
    print(f'{det} {arch}: {count} parameters ({count / 1e6:.4f}M)')
    assert count == count_parameters(ref)
    # The head's levels are the neck's: strides 4..64 for the R-CNNs, 8..128 for FCOS.
    strides = [s.stride for s in ours.neck.check_inputs(ours.backbone.out_specs)]
    head = ours.bbox_head if det == 'fcos' else ours.rpn_head
    assert [s[0] for s in head.prior_generator.strides] == strides


@pytest.mark.parametrize('det', ['mask-rcnn', 'fcos'])
def test_w18_features_and_detections_equal_mmdets(det, cityscapes_sample):
    """mmdet's detector with random weights, loaded into ours: bit for bit the same features
    (our backbone and neck run mmdet's ops in mmdet's order), boxes, scores and masks."""
    ref_cfg, our_cfg = _reference(det, 'w18'), _ours(det, 'w18')
    for cfg in (ref_cfg, our_cfg):
        # Random heads score every class near chance: keep all boxes, to have something to compare.
        # At most 10 (a mask head on 100 RoIs is ~46 GFLOP).
        test_cfg = cfg.model.test_cfg if det == 'fcos' else cfg.model.test_cfg.rcnn
        test_cfg.update(score_thr=0.0, max_per_img=10)
    ref, ours = same_weight_detectors(ref_cfg, our_cfg)

    data = frame_batch(ref, cityscapes_sample)      # 128x256: sides multiples of 32
    inputs, samples = data['inputs'], data['data_samples']
    _, feats_ours = assert_equal_features(ref, ours, inputs)
    first = 32 if det == 'fcos' else 64              # stride 8 (FCOS) or 4 on a 256-wide image
    assert [f.shape[-1] for f in feats_ours] == [first // 2**i for i in range(5)]
    with torch.no_grad():
        det_ref = ref.predict(inputs, samples, rescale=False)[0].pred_instances
        det_ours = ours.predict(inputs, samples, rescale=False)[0].pred_instances
    assert len(det_ours) == len(det_ref) == 10
    print(f'{det} W18: {len(det_ref)} detections compared')
    for key in ('labels', 'bboxes', 'scores') + (('masks', ) if det == 'mask-rcnn' else ()):
        assert torch.equal(det_ref[key], det_ours[key]), key
    if det == 'mask-rcnn':
        assert det_ours.masks.shape[-2:] == (128, 256) and det_ours.masks.any()


W32_OUTPUTS = '[0: 32ch @1/4, 1: 64ch @1/8, 2: 128ch @1/16, 3: 256ch @1/32]'
W18_NECK_ON_W32 = (
    'model.neck: HRNetV2pNeck: in_channels=[18, 36, 72, 144] (in_index=[0, 1, 2, 3]) does not '
    'match the backbone outputs, which have channels [32, 64, 128, 256]; backbone outputs: '
    f'{W32_OUTPUTS}')


@pytest.mark.parametrize('det', DETECTORS)
def test_neck_for_another_width_is_refused_when_built(det):
    """``check_model_contract(MODELS.build(cfg.model))``: a W18 neck behind the W32 backbone
    would otherwise fail only in the first forward, in the neck's 1x1 conv."""
    from mmseg_hrplus.models.utils import check_model_contract
    cfg = _ours(det, 'w32')
    cfg.model.neck.in_channels = [18, 36, 72, 144]
    with pytest.raises(ValueError) as info:
        check_model_contract(build_detector(cfg, 'meta'))
    assert str(info.value) == W18_NECK_ON_W32


@pytest.mark.parametrize('det', ['mask-rcnn', 'fcos'])
def test_neck_for_another_width_fails_in_build_runner(det, tmp_path):
    """The same through tools/train.py's and tools/test.py's ``build_runner``, before any data
    is read; a two-stage and a single-stage detector."""
    from mmseg_hrplus.engine.runner import build_runner, load_config
    cfg = load_config(str(OUR_CONFIGS / DETECTORS[det][0].format('w32')),
                      {'model.backbone.init_cfg': None,
                       'model.neck.in_channels': [18, 36, 72, 144]}, work_dir=str(tmp_path))
    with pytest.raises(ValueError) as info:
        build_runner(cfg)
    assert str(info.value) == W18_NECK_ON_W32
