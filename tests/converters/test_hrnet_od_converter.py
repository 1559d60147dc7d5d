"""hrnet-od: HRNet-Object-Detection / mmdetection v1 Faster R-CNN checkpoints -> our mmdet 3 config.

* The key/shape manifest of their W48 Faster R-CNN (tests/data/manifests/hrnet-od.json,
  generated once from their model code, HRNet/HRNet-Object-Detection@3493751) converts and loads
  strictly into configs/mmdet/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od-weights.py built at full
  width on the meta device, in the three neck layouts the HRFPN has had.
* Class order: mmdet v1 keeps background first (81 scores, 324 deltas), mmdet 3 last (81 scores,
  320 deltas): a narrowed detector's box head gives, after conversion, exactly the v1 head's
  softmax scores and deltas for every class.
* Files go through the safe reader (also a torch-1.x style, non-zip file with a v1 meta); wrong
  files fail naming the file, the source and the keys.
"""
import copy
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmseg_hrplus.checkpoint import read_checkpoint
from mmseg_hrplus.converters import ConversionError, convert_file
from mmseg_hrplus.converters.hrnet_od import COCO_CLASSES, convert_hrnet_od
from tests.helpers.tiny_models import tiny_hrnet_extra

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'mmdet' / 'faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od-weights.py'
MANIFEST = REPO / 'tests' / 'data' / 'manifests' / 'hrnet-od.json'

pytestmark = pytest.mark.usefixtures('one_thread')


def build(cfg):
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


def manifest():
    return json.loads(MANIFEST.read_text(), object_pairs_hook=OrderedDict)


def v1_checkpoint(state, classes=COCO_CLASSES):
    """What mmdetection v1's save_checkpoint writes (optimizer stripped, as published)."""
    return {'meta': {'mmdet_version': '1.0rc0+d3ca926', 'mmcv_version': '0.2.10',
                     'config': "model = dict(type='FasterRCNN')", 'CLASSES': tuple(classes),
                     'epoch': 12, 'iter': 87960, 'time': 'Tue Aug 20 00:00:00 2019'},
            'state_dict': state}


def relayout_neck(state, layout):
    """Their HRFPN's keys (``reduction_conv.0``, ``fpn_conv.{i}``) as mmdetection v1 names them
    (``ConvModule``: ``.conv``), or with one conv shared by all levels (``share_conv=True``)."""
    out = OrderedDict()
    for key, value in state.items():
        if layout == 'mmdet-v1':
            key = key.replace('neck.reduction_conv.0.', 'neck.reduction_conv.conv.')
            if key.startswith('neck.fpn_conv.'):
                level, param = key.split('.')[2:]
                key = f'neck.fpn_convs.{level}.conv.{param}'
        elif layout == 'share_conv' and key.startswith('neck.fpn_conv.'):
            level, param = key.split('.')[2:]
            if level != '0':
                continue
            key = f'neck.fpn_conv.{param}'
        out[key] = value
    return out


@pytest.fixture(scope='module')
def full_width_model():
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.model.backbone.arch == 'w48' and cfg.model.backbone.init_cfg is None
    with torch.device('meta'):
        return build(cfg)


@pytest.mark.parametrize('layout', ['hrnet-od', 'mmdet-v1', 'share_conv'])
def test_manifest_converts_and_loads_strictly_at_full_width(layout, full_width_model):
    shapes = manifest()
    assert len(shapes) == 1856
    assert shapes['bbox_head.fc_cls.weight'] == [81, 1024]
    assert shapes['bbox_head.fc_reg.weight'] == [324, 1024]
    with torch.device('meta'):
        state = OrderedDict(
            (k, torch.empty(s, dtype=torch.long if k.endswith('num_batches_tracked')
                            else torch.float32)) for k, s in shapes.items())
    state = relayout_neck(state, layout)
    converted = convert_hrnet_od(v1_checkpoint(state))
    assert converted.dropped == {}
    assert converted.meta['dataset_meta']['classes'] == COCO_CLASSES
    assert set(converted.meta['row_changes']) >= {'bbox_head.fc_cls', 'bbox_head.fc_reg'}

    model = full_width_model
    ours = model.state_dict()
    assert len(converted.state_dict) == len(ours) == 1856
    # strict: every key present, none extra, every shape equal (assign keeps the meta tensors)
    model.load_state_dict(converted.state_dict, strict=True, assign=True)
    assert converted.state_dict['roi_head.bbox_head.fc_cls.weight'].shape == (81, 1024)
    assert converted.state_dict['roi_head.bbox_head.fc_reg.weight'].shape == (320, 1024)
    params = sum(v.numel() for k, v in converted.state_dict.items()
                 if 'running' not in k and 'num_batches' not in k)
    assert params == 83_360_736   # v1's 83,364,836 less the background's 4 x 1025 deltas


# ---------------------------------------------------------------------------------------------
# A narrowed detector: real numbers in a second
# ---------------------------------------------------------------------------------------------

NUM_CLASSES = 4
CLASSES = ('car', 'person', 'rider', 'truck')


def narrow_cfg():
    cfg = Config.fromfile(str(CONFIG))
    model = cfg.model
    model.backbone.pop('arch')
    model.backbone.extra = tiny_hrnet_extra()
    model.neck.update(in_channels=[4, 8, 16, 32], out_channels=16)
    model.rpn_head.update(in_channels=16, feat_channels=16)
    model.roi_head.bbox_roi_extractor.out_channels = 16
    model.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32, num_classes=NUM_CLASSES)
    return cfg


def to_v1(state, gen):
    """Random weights for our narrowed detector, in mmdetection v1's layout (HRNet-Object-
    Detection's neck keys, background first in fc_cls, 4 extra background deltas in fc_reg)."""
    out = OrderedDict()
    for key, value in state.items():
        value = torch.randn(value.shape, generator=gen) if value.is_floating_point() else value
        if key.startswith('neck.'):
            key = key.replace('reduction_conv.conv.', 'reduction_conv.0.')
            key = key.replace('fpn_convs.', 'fpn_conv.').replace('.conv.weight', '.weight')
            key = key.replace('.conv.bias', '.bias')
        if key.startswith('roi_head.'):
            key = key[len('roi_head.'):]
        if key.startswith('bbox_head.fc_cls.'):      # ours: background last
            value = torch.cat([value[-1:], value[:-1]])
        if key.startswith('bbox_head.fc_reg.'):
            value = torch.cat([torch.randn((4, ) + value.shape[1:], generator=gen), value])
        out[key] = value
    return out


@pytest.fixture(scope='module')
def narrow_v1():
    torch.manual_seed(0)
    cfg = narrow_cfg()
    state = to_v1(build(cfg).state_dict(), torch.Generator().manual_seed(1))
    assert state['bbox_head.fc_cls.weight'].shape == (NUM_CLASSES + 1, 32)
    assert state['bbox_head.fc_reg.weight'].shape == (4 * (NUM_CLASSES + 1), 32)
    assert 'neck.fpn_conv.4.weight' in state and 'neck.reduction_conv.0.bias' in state
    return cfg, state


def test_class_order_numerically(narrow_v1):
    cfg, v1 = narrow_v1
    converted = convert_hrnet_od(v1_checkpoint(v1, CLASSES))
    assert converted.meta['dataset_meta']['classes'] == CLASSES
    model = build(cfg).eval()
    model.load_state_dict(converted.state_dict, strict=True)

    feats = torch.randn(7, 16, 7, 7)
    with torch.no_grad():
        cls_ours, reg_ours = model.roi_head.bbox_head(feats)
        hidden = feats.flatten(1)
        for i in range(2):
            hidden = torch.relu(torch.nn.functional.linear(
                hidden, v1[f'bbox_head.shared_fcs.{i}.weight'],
                v1[f'bbox_head.shared_fcs.{i}.bias']))
        cls_v1 = torch.nn.functional.linear(hidden, v1['bbox_head.fc_cls.weight'],
                                            v1['bbox_head.fc_cls.bias'])
        reg_v1 = torch.nn.functional.linear(hidden, v1['bbox_head.fc_reg.weight'],
                                            v1['bbox_head.fc_reg.bias'])
    assert cls_ours.shape == (7, NUM_CLASSES + 1) and reg_ours.shape == (7, 4 * NUM_CLASSES)
    p_ours, p_v1 = cls_ours.softmax(1), cls_v1.softmax(1)
    assert p_v1.max() > 0.5   # peaked: a wrong order would not go unnoticed
    for k in range(NUM_CLASSES):   # class k: v1 row k + 1, ours row k
        assert torch.allclose(p_ours[:, k], p_v1[:, k + 1], atol=1e-6)
        assert torch.allclose(reg_ours[:, 4 * k:4 * k + 4], reg_v1[:, 4 * (k + 1):4 * (k + 2)],
                              atol=1e-5)
    assert torch.allclose(p_ours[:, NUM_CLASSES], p_v1[:, 0], atol=1e-6)   # background last
    v1_in_our_order = p_v1[:, list(range(1, NUM_CLASSES + 1)) + [0]]
    assert torch.equal(p_ours.argmax(1), v1_in_our_order.argmax(1))


def test_convert_file_reads_a_v1_file_and_writes_meta(narrow_v1, tmp_path):
    _, v1 = narrow_v1
    src, dst = tmp_path / 'faster_rcnn_hrnetv2p_tiny_1x.pth', tmp_path / 'out.pth'
    # torch < 1.6 (mmdetection v1's era) wrote the legacy, non-zip format
    torch.save(v1_checkpoint(v1, CLASSES), src, _use_new_zipfile_serialization=False)
    converted = convert_file('hrnet-od', str(src), str(dst))
    written = read_checkpoint(str(dst))
    meta = written['meta']
    assert meta['source'] == 'hrnet-od' and meta['original_file'] == src.name
    assert meta['dropped_keys'] == {}
    assert meta['dataset_meta']['classes'] == CLASSES
    assert meta['source_mmdet_version'] == '1.0rc0+d3ca926'
    assert 'background' in meta['row_changes']['bbox_head.fc_cls']
    assert set(written['state_dict']) == set(converted.state_dict)
    assert torch.equal(written['state_dict']['roi_head.bbox_head.fc_cls.weight'],
                       torch.cat([v1['bbox_head.fc_cls.weight'][1:],
                                  v1['bbox_head.fc_cls.weight'][:1]]))
    assert torch.equal(written['state_dict']['roi_head.bbox_head.fc_reg.bias'],
                       v1['bbox_head.fc_reg.bias'][4:])


def test_wrong_source_fails_naming_file_source_and_keys(narrow_v1, tmp_path):
    _, v1 = narrow_v1
    # an mmseg segmentor is not a detector
    seg = tmp_path / 'fcn_hr18_cityscapes.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(64, 3, 3, 3),
                               'decode_head.conv_seg.weight': torch.zeros(19, 270, 1, 1)}}, seg)
    with pytest.raises(ConversionError) as err:
        convert_file('hrnet-od', str(seg))
    msg = str(err.value)
    assert str(seg) in msg and 'hrnet-od' in msg and 'decode_head.conv_seg.weight' in msg

    # a Mask R-CNN: its mask head has no place in a Faster R-CNN
    mask = copy.copy(v1)
    mask['mask_head.conv_logits.weight'] = torch.zeros(81, 256, 1, 1)
    path = tmp_path / 'mask_rcnn_hrnetv2p_w18_1x.pth'
    torch.save(v1_checkpoint(mask, CLASSES), path)
    with pytest.raises(ConversionError, match=r'mask_rcnn_hrnetv2p_w18_1x\.pth.*hrnet-od.*'
                                              r'mask_head\.conv_logits\.weight'):
        convert_file('hrnet-od', str(path))


def test_refuses_softmax_rpn_class_mismatch_and_missing_parts(narrow_v1):
    _, v1 = narrow_v1
    softmax = OrderedDict(v1)
    softmax['rpn_head.rpn_cls.weight'] = torch.zeros(6, 16, 1, 1)
    with pytest.raises(ConversionError, match='softmax RPN'):
        convert_hrnet_od(v1_checkpoint(softmax, CLASSES))
    with pytest.raises(ConversionError, match='5 rows .* names 80 classes'):
        convert_hrnet_od(v1_checkpoint(v1))          # COCO names, 4-class head
    no_head = OrderedDict((k, v) for k, v in v1.items() if not k.startswith('bbox_head.'))
    with pytest.raises(ConversionError, match=r'no bbox_head\.\* keys'):
        convert_hrnet_od(no_head)
    bad_reg = OrderedDict(v1)
    bad_reg['bbox_head.fc_reg.weight'] = torch.zeros(8, 32)
    bad_reg['bbox_head.fc_reg.bias'] = torch.zeros(8)
    with pytest.raises(ConversionError, match='fc_reg has 8 rows'):
        convert_hrnet_od(v1_checkpoint(bad_reg, CLASSES))
