"""deeplab-kazuto: kazuto1011/deeplab-pytorch DeepLabv2 files -> DilatedResNet(caffe) + ASPPHead.

The source files are synthesised from the key/shape manifests generated once from the original
model code (tests/data/manifests/deeplab-kazuto*.json); every tensor gets its own value, so a
key mapped to the wrong place is caught. Parity of the logits with the original code was
measured outside the repository (see the converter's report); these tests check the mapping,
the strict load, the refusals and the ceil-mode stem pool.
"""
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS as SEG_MODELS

from mmseg_hrplus.converters import ConversionError, convert_file, get_source
from mmseg_hrplus.models.backbones.dilated_resnet import DilatedResNet

pytestmark = pytest.mark.usefixtures('one_thread')

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / 'tests' / 'data' / 'manifests'
VOC_CONFIG = REPO / 'configs' / 'deeplabv2' / 'deeplabv2_r101_voc12aug_kazuto-weights.py'
COCOSTUFF_CONFIG = REPO / 'configs' / 'deeplabv2' / 'deeplabv2_r101_cocostuff164k_kazuto-weights.py'


def synthesise(name: str) -> 'OrderedDict[str, torch.Tensor]':
    """A state dict with the manifest's keys and shapes; tensor ``i`` is filled with ``i``."""
    keys = json.loads((MANIFESTS / f'{name}.json').read_text())['keys']
    return OrderedDict((k, torch.full(tuple(shape), float(i)))
                       for i, (k, shape) in enumerate(keys.items()))


def convert(state, **options):
    return get_source('deeplab-kazuto').convert(state, **options)


def build(config: Path):
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        return SEG_MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def voc_source():
    return synthesise('deeplab-kazuto')


def test_manifests_are_the_original_layout(voc_source):
    init = synthesise('deeplab-kazuto-init')
    assert len(voc_source) == 632 and all(k.startswith('base.') for k in voc_source)
    assert tuple(voc_source['base.aspp.c3.weight'].shape) == (21, 2048, 3, 3)
    assert tuple(init['fc.weight'].shape) == (91, 2048, 1, 1) and len(init) == 626


def test_msc_wrapped_file_loads_strictly_with_every_key_mapped(voc_source):
    converted = convert(voc_source)
    sd = converted.state_dict
    assert converted.dropped == {}
    assert converted.meta == dict(kind='segmentor', depth=101, num_classes=21, aspp_branches=4,
                                  msc_wrapped=True)
    # every source tensor used once, none duplicated
    assert len(sd) == len(voc_source)
    assert sorted(float(v.flatten()[0]) if v.numel() else float(v) for v in sd.values()) == \
        sorted(float(v.flatten()[0]) if v.numel() else float(v) for v in voc_source.values())
    pairs = {
        'base.layer1.conv1.conv.weight': 'backbone.conv1.weight',
        'base.layer1.conv1.bn.running_var': 'backbone.bn1.running_var',
        'base.layer2.block1.shortcut.conv.weight': 'backbone.layer1.0.downsample.0.weight',
        'base.layer3.block1.reduce.conv.weight': 'backbone.layer2.0.conv1.weight',
        'base.layer4.block23.conv3x3.bn.bias': 'backbone.layer3.22.bn2.bias',
        'base.layer5.block3.increase.bn.num_batches_tracked':
            'backbone.layer4.2.bn3.num_batches_tracked',
        'base.aspp.c2.bias': 'decode_head.branches.2.bias',
    }
    for src, ours in pairs.items():
        assert torch.equal(sd[ours], voc_source[src]), (src, ours)

    model = build(VOC_CONFIG)
    model.load_state_dict(sd, strict=True)
    assert model.backbone.maxpool.ceil_mode and model.backbone.style == 'caffe'
    # Caffe style: the stride of res3 is on the first 1x1 conv
    assert model.backbone.layer2[0].conv1.stride == (2, 2)
    assert model.backbone.layer2[0].conv2.stride == (1, 1)
    assert [b.padding for b in model.decode_head.branches] == [(6, 6), (12, 12), (18, 18),
                                                               (24, 24)]
    assert all(b.bias is not None for b in model.decode_head.branches)


def test_plain_keys_give_the_same_state_dict(voc_source):
    plain = OrderedDict((k[len('base.'):], v) for k, v in voc_source.items())
    a, b = convert(voc_source).state_dict, convert(plain).state_dict
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert convert(plain).meta['msc_wrapped'] is False
    # DataParallel's module. prefix on top of the wrapper
    wrapped = OrderedDict(('module.' + k, v) for k, v in voc_source.items())
    assert list(convert(wrapped).state_dict) == list(a)


def test_cocostuff_file_loads_into_the_182_class_config(voc_source):
    src = OrderedDict(voc_source)
    for i in range(4):
        src[f'base.aspp.c{i}.weight'] = torch.zeros(182, 2048, 3, 3)
        src[f'base.aspp.c{i}.bias'] = torch.zeros(182)
    converted = convert(src, num_classes=182)
    assert converted.meta['num_classes'] == 182
    model = build(COCOSTUFF_CONFIG)
    model.load_state_dict(converted.state_dict, strict=True)


def test_init_file_gives_backbone_keys_and_drops_the_coco_classifier():
    init = synthesise('deeplab-kazuto-init')
    converted = convert(init)
    assert set(converted.dropped) == {'fc.weight', 'fc.bias'}
    assert all('COCO classifier' in reason for reason in converted.dropped.values())
    assert converted.meta == dict(kind='backbone_init', depth=101, msc_wrapped=False,
                                  init_classifier_classes=91)
    assert len(converted.state_dict) + len(converted.dropped) == len(init)
    backbone = DilatedResNet(depth=101, out_indices=(3, ), style='caffe',
                             stem_pool_ceil_mode=True)
    backbone.load_state_dict(converted.state_dict, strict=True)
    assert torch.equal(converted.state_dict['layer4.2.conv3.weight'],
                       init['layer5.block3.increase.conv.weight'])


def test_file_round_trip_and_wrong_source_error(tmp_path, voc_source):
    src = tmp_path / 'deeplabv2_resnet101_msc-vocaug-20000.pth'
    small = OrderedDict((k, v) for k, v in voc_source.items() if 'layer4.' not in k)
    torch.save(small, src)
    with pytest.raises(ConversionError) as err:
        convert_file('deeplab-kazuto', str(src))
    # block counts of no ResNet: names the file, the source and the counts
    assert str(src) in str(err.value) and 'deeplab-kazuto' in str(err.value)
    assert '(3, 4, 0, 3)' in str(err.value)

    tv = tmp_path / 'resnet101-63fe2227.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'bn1.weight': torch.zeros(64),
                'fc.weight': torch.zeros(1000, 2048), 'fc.bias': torch.zeros(1000)}, tv)
    with pytest.raises(ConversionError) as err:
        convert_file('deeplab-kazuto', str(tv))
    message = str(err.value)
    assert str(tv) in message and 'deeplab-kazuto' in message
    assert 'conv1.weight' in message and 'bn1.weight' in message


def test_wrong_config_errors_name_keys_and_shapes(voc_source):
    with pytest.raises(ConversionError, match=r'base\.aspp\.c0\.weight.*21 classes.*182'):
        convert(voc_source, num_classes=182)
    bad = OrderedDict(voc_source)
    bad['base.layer3.block2.conv3x3.conv.weight'] = torch.zeros(128, 128, 1, 1)
    with pytest.raises(ConversionError,
                       match=r'base\.layer3\.block2\.conv3x3\.conv\.weight \(128, 128, 1, 1\) '
                             r'\(expected \(128, 128, 3, 3\)\)'):
        convert(bad)
    extra = OrderedDict(voc_source)
    extra['base.aspp.c0.conv.weight'] = torch.zeros(1)  # DeepLabv3's ASPP layout
    with pytest.raises(ConversionError, match=r'base\.aspp\.c0\.conv\.weight'):
        convert(extra)


def _manual_ceil_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3, stride 2, padding 1 max-pool with Caffe's rounding, written out: output side
    ``ceil((n + 2 - 3) / 2) + 1``, windows clipped to the padded image."""
    n, c, h, w = x.shape
    oh, ow = -(-(h - 1) // 2) + 1, -(-(w - 1) // 2) + 1
    padded = F.pad(x, (1, 3, 1, 3), value=float('-inf'))
    out = torch.empty(n, c, oh, ow)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].amax(dim=(2, 3))
    return out


@pytest.mark.parametrize('side, floor_side, ceil_side', [(239, 60, 61), (241, 61, 61)])
def test_ceil_mode_stem_pool_rederived(side, floor_side, ceil_side):
    net = DilatedResNet(depth=50, stem_channels=8, base_channels=4, out_indices=(0, ),
                        style='caffe', stem_pool_ceil_mode=True).eval()
    floor = DilatedResNet(depth=50, stem_channels=8, base_channels=4, out_indices=(0, ),
                          style='caffe').eval()
    x = torch.randn(1, 3, side, 33)
    with torch.no_grad():
        stem = net.relu(net.norm1(net.conv1(x)))
        pooled = net.maxpool(stem)
        assert pooled.shape[2] == ceil_side and floor.maxpool(stem).shape[2] == floor_side
        assert torch.equal(pooled, _manual_ceil_pool(stem))
        floor.load_state_dict(net.state_dict())
        assert net(x)[0].shape[2] == ceil_side and floor(x)[0].shape[2] == floor_side
