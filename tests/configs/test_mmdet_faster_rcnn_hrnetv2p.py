"""configs/mmdet/faster-rcnn_hrnetv2p-*: parameter counts and parity with mmdet's own detector."""
import os.path as osp
from pathlib import Path

import mmcv
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import get_installed_path

REPO_ROOT = Path(__file__).resolve().parents[2]
OURS = REPO_ROOT / 'configs' / 'mmdet' / 'faster-rcnn_hrnetv2p-{}_1x_coco.py'
MMDET_HRNET = osp.join(get_installed_path('mmdet'), '.mim', 'configs', 'hrnet')
THEIRS = {'w18': 'faster-rcnn_hrnetv2p-w18-1x_coco.py',
          'w32': 'faster-rcnn_hrnetv2p-w32-1x_coco.py',
          'w40': 'faster-rcnn_hrnetv2p-w40-1x_coco.py'}
WIDTHS = {'w18': 18, 'w32': 32, 'w40': 40, 'w48': 48}


pytestmark = pytest.mark.usefixtures('one_thread')


def _build(cfg: Config) -> torch.nn.Module:
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None     # no download; random init is enough here
    return MODELS.build(cfg.model)


def _ours(arch: str) -> Config:
    return Config.fromfile(str(OURS).format(arch))


def _theirs(arch: str) -> Config:
    return Config.fromfile(osp.join(MMDET_HRNET, THEIRS[arch]))


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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


def _randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights and BN statistics that keep activations O(10) through W32.

    mmdet's own init (Kaiming, BN statistics 0/1) makes the random backbone's outputs ~1e8, so
    every RPN box decodes out of the image and nothing is left to compare; the heads keep
    mmdet's init (small regression outputs).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in list(model.backbone.modules()) + list(model.neck.modules()):
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight[0].numel()**.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.01)
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    model.rpn_head.init_weights()
    model.roi_head.init_weights()


def test_w32_parity_with_mmdet_detector(cityscapes_sample):
    from mmdet.structures import DetDataSample
    ref_cfg, our_cfg = _theirs('w32'), _ours('w32')
    for cfg in (ref_cfg, our_cfg):
        # Random heads score every class near 1/81: keep all boxes so there is something to compare.
        cfg.model.test_cfg.rcnn.score_thr = 0.0
    ref = _build(ref_cfg)
    _randomize_(ref)
    ours = _build(our_cfg)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()
    ours.eval()

    frame = cityscapes_sample / 'leftImg8bit' / 'val' / 'frankfurt' / \
        'frankfurt_000000_000294_leftImg8bit.png'
    img = mmcv.imresize(mmcv.imread(str(frame)), (256, 128))   # (w, h): sides multiple of 32
    meta = dict(img_shape=(128, 256), ori_shape=(128, 256), scale_factor=(1.0, 1.0))
    data = dict(inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()],
                data_samples=[DetDataSample(metainfo=meta)])
    data = ref.data_preprocessor(data, False)
    inputs, samples = data['inputs'], data['data_samples']

    # Our backbone and neck run mmdet's ops in mmdet's order (same weights, same kernels), so
    # features, proposals and detections are bit for bit equal, on any CPU.
    with torch.no_grad():
        feats_ref, feats_ours = ref.extract_feat(inputs), ours.extract_feat(inputs)
        assert len(feats_ours) == len(feats_ref) == 5
        feat_diff = max((a - b).abs().max().item() for a, b in zip(feats_ref, feats_ours))
        assert all(torch.equal(a, b) for a, b in zip(feats_ref, feats_ours)), feat_diff

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
