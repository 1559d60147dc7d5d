"""CoinCheung/BiSeNet BiSeNetV2 -> ours.

A state dict synthesised from the committed key/shape manifest of CoinCheung's Cityscapes
BiSeNetV2 (training model, booster heads included; tests/data/manifests/bisenet-coincheung.json)
converts and loads strictly into the model of
configs/bisenetv2/bisenetv2_cityscapes_coincheung-weights.py. Where CoinCheung's forward differs
from mmseg's (BGA: nearest x4 and bias-free 1x1 convs; booster heads: nearest x2 between two
convs; input normalisation) a few lines below re-derive the original's semantics and compare.
Wrong files fail with a ConversionError naming source, file and keys.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from mmseg_hrplus.converters import ConversionError, convert_file, get_source
from mmseg_hrplus.models.decode_heads.bga_head import BGAHead, BilateralGuidedAggregation
from mmseg_hrplus.models.decode_heads.booster_head import BoosterHead
from tests.helpers.float_bounds import assert_close_relative, float32_bound, rounding_growth

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / 'tests' / 'data' / 'manifests' / 'bisenet-coincheung.json'
CONFIG = REPO / 'configs' / 'bisenetv2' / 'bisenetv2_cityscapes_coincheung-weights.py'
SOURCE = 'bisenet-coincheung'

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Heads built directly build their losses from the registry of the current default scope:
    make it mmseg's, whatever scope an earlier test in the process left current."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def synthesise(num_classes=19, seed=0):
    """Random tensors with the manifest's keys and shapes (classes replaced if asked)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in json.loads(MANIFEST.read_text()).items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
            continue
        if shape and shape[0] == 19 and ('conv_out.1.' in key):
            shape = [num_classes] + shape[1:]
        state[key] = torch.randn(shape, generator=gen)
    return state


def build(num_classes=19):
    cfg = Config.fromfile(str(CONFIG))
    if num_classes != 19:
        cfg.model.decode_head.num_classes = num_classes
        for head in cfg.model.auxiliary_head:
            head.num_classes = num_classes
    with DefaultScope.overwrite_default_scope('mmseg'):
        return revert_sync_batchnorm(MODELS.build(cfg.model))


@pytest.fixture(scope='module')
def model():
    return build()


def convert(state):
    return get_source(SOURCE).convert(state)


def test_manifest_converts_and_loads_strictly(model, tmp_path):
    state = synthesise()
    src, dst = tmp_path / 'model_final_v2_city.pth', tmp_path / 'ours.pth'
    torch.save(state, src)
    converted = convert_file(SOURCE, str(src), str(dst))
    assert converted.dropped == {}  # booster heads are converted, nothing else to drop
    assert converted.meta == {'num_classes': 19, 'auxiliary_heads': True}
    assert len(converted.state_dict) == len(state) == 383
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['source'] == SOURCE
    assert saved['meta']['original_file'] == 'model_final_v2_city.pth'
    model.load_state_dict(saved['state_dict'])  # strict
    ours = model.state_dict()
    # Values are carried, e.g. a BGA 1x1 conv, a GE shortcut BN and a booster classifier.
    for src_key, our_key in [
            ('bga.right2.2.weight', 'decode_head.bga.semantic_dw.pointwise_conv.conv.weight'),
            ('segment.S5_4.0.shortcut.3.running_var',
             'backbone.semantic_stages.2.0.shortcut.pointwise_conv.bn.running_var'),
            ('aux5_4.conv_out.0.1.conv.weight', 'auxiliary_head.3.convs.1.conv.weight'),
            ('head.conv_out.1.bias', 'decode_head.conv_seg.bias')]:
        assert torch.equal(ours[our_key], state[src_key]), src_key


def test_other_class_counts_and_eval_mode_files():
    # ADE20K (150 classes), saved from CoinCheung's 'eval' mode (no booster heads), DDP-wrapped.
    state = {k: v for k, v in synthesise(150).items() if not k.startswith('aux')}
    converted = convert({'state_dict': {f'module.{k}': v for k, v in state.items()}})
    assert converted.meta == {'num_classes': 150, 'auxiliary_heads': False}
    model = build(150)
    missing, unexpected = model.load_state_dict(converted.state_dict, strict=False)
    assert not unexpected and missing and all(k.startswith('auxiliary_head.') for k in missing)


def test_wrong_source_and_wrong_variant_files(model, tmp_path):
    # Our own (mmseg-style) keys are not CoinCheung's: the file and first keys are named.
    src = tmp_path / 'ours.pth'
    torch.save({'state_dict': model.state_dict()}, src)
    with pytest.raises(ConversionError, match=rf'ours\.pth is not a {SOURCE} checkpoint.*'
                                              r'keys are not part of.*backbone\.detail_branch'):
        convert_file(SOURCE, str(src))
    # BiSeNetV1 keys.
    with pytest.raises(ConversionError, match=rf'{SOURCE}: 2 keys.*cp\.resnet\.conv1\.weight'):
        convert({'cp.resnet.conv1.weight': torch.zeros(64, 3, 7, 7),
                 'ffm.convblk.conv.weight': torch.zeros(256, 384, 1, 1)})
    # A bias on a BGA 1x1 conv (mmseg's BGA): no place for it in the converted model.
    state = synthesise()
    state['bga.left1.2.bias'] = torch.zeros(128)
    with pytest.raises(ConversionError, match=r'bga\.left1\.2\.bias'):
        convert(state)
    # A wider seg head: the key and both shapes are named.
    state = synthesise()
    state['head.conv.conv.weight'] = torch.zeros(512, 128, 3, 3)
    with pytest.raises(ConversionError, match=r'head\.conv\.conv\.weight \(512, 128, 3, 3\) '
                                              r'\(expected \(1024, 128, 3, 3\)\)'):
        convert(state)
    # Truncated: a missing branch layer, or only some booster heads.
    state = synthesise()
    del state['segment.S4.1.conv2.1.running_mean']
    with pytest.raises(ConversionError, match=r'1 keys of the model are missing.*'
                                              r'semantic_stages\.1\.1\.project\.bn\.running_mean'):
        convert(state)
    state = {k: v for k, v in synthesise().items() if not k.startswith('aux3.')}
    with pytest.raises(ConversionError, match=r'booster heads must be all present or all absent'):
        convert(state)


def _dw_separable(module, x):
    """depthwise conv -> BN -> 1x1 conv, from the raw layers."""
    dw = module.depthwise_conv
    x = dw.bn(F.conv2d(x, dw.conv.weight, None, 1, 1, 1, x.shape[1]))
    return F.conv2d(x, module.pointwise_conv.conv.weight, module.pointwise_conv.conv.bias)


def _randomise_bn(module):
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)


def test_bga_nearest_mode_is_coincheungs_aggregation():
    bga = BilateralGuidedAggregation(8, 8, 8, stride_ratio=4, upsample_mode='nearest',
                                     pointwise_bias=False).eval()
    _randomise_bn(bga)
    assert bga.detail_dw.pointwise_conv.conv.bias is None
    assert bga.semantic_dw.pointwise_conv.conv.bias is None
    detail, semantic = torch.randn(2, 8, 16, 24), torch.randn(2, 8, 4, 6)

    def up4(t):  # nearest x4: every pixel repeated 4x4
        return t.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)

    with torch.no_grad():
        left1 = _dw_separable(bga.detail_dw, detail)
        down = bga.detail_down[0]
        left2 = F.avg_pool2d(down.bn(F.conv2d(detail, down.conv.weight, None, 2, 1)), 3, 2, 1)
        right1 = bga.semantic_conv.bn(F.conv2d(semantic, bga.semantic_conv.conv.weight,
                                               None, 1, 1))
        right2 = _dw_separable(bga.semantic_dw, semantic)
        fused = left1 * torch.sigmoid(up4(right1)) + up4(left2 * torch.sigmoid(right2))
        expected = F.relu(bga.fuse.bn(F.conv2d(fused, bga.fuse.conv.weight, None, 1, 1)))
        got = bga(detail, semantic)
        bga.upsample_mode = 'bilinear'
        bilinear = bga(detail, semantic)
    assert expected.abs().max() > 0.1
    # the same convs and BNs; nearest x4 and repeat_interleave copy values: bit for bit
    assert torch.equal(got, expected), (got - expected).abs().max().item()
    assert (bilinear - expected).abs().max().item() > 1e-2  # the mode matters


def test_booster_head_with_upsampling_is_coincheungs_aux_head():
    head = BoosterHead(4, 6, in_index=0, num_convs=2, hidden_channels=5,
                       upsample_before_last_conv=2, num_classes=3).eval()
    _randomise_bn(head)
    x = torch.randn(1, 4, 5, 7)
    with torch.no_grad():
        first, last = head.convs
        y = F.relu(first.bn(F.conv2d(x, first.conv.weight, None, 1, 1)))
        y = y.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2
        y = F.relu(last.bn(F.conv2d(y, last.conv.weight, None, 1, 1)))
        expected = F.conv2d(y, head.conv_seg.weight, head.conv_seg.bias)
        got = head([x])
    assert got.shape == (1, 3, 10, 14)
    assert torch.equal(got, expected), (got - expected).abs().max().item()  # same ops


def test_data_preprocessor_is_coincheungs_normalisation(model):
    from mmseg.structures import SegDataSample
    rgb = np.random.RandomState(0).randint(0, 256, (32, 64, 3), dtype=np.uint8)
    mean, std = np.array([0.3257, 0.3690, 0.3223]), np.array([0.2112, 0.2148, 0.2115])
    theirs = torch.from_numpy(((rgb / 255.0 - mean) / std).transpose(2, 0, 1)).float()
    bgr = torch.from_numpy(rgb[:, :, ::-1].transpose(2, 0, 1).copy())  # as mmseg loads
    sample = SegDataSample(metainfo=dict(img_shape=(32, 64), ori_shape=(32, 64)))
    data = model.data_preprocessor(dict(inputs=[bgr], data_samples=[sample]), False)
    # float32 (x - 255 mean) / (255 std) vs float64 (x / 255 - mean) / std: ~4 roundings
    assert_close_relative(data['inputs'][0], theirs, float32_bound(rounding_growth(4)),
                          'normalised image')


@pytest.mark.parametrize('kwargs, message', [
    (dict(upsample_mode='bicubic'), r"upsample_mode='bicubic' is not supported; allowed values: "
                                    r"'bilinear', 'nearest'"),
    (dict(pointwise_bias='no'), r"pointwise_bias must be True or False, got 'no'"),
])
def test_bga_head_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BGAHead(num_classes=19, **kwargs)


@pytest.mark.parametrize('kwargs, message', [
    (dict(upsample_before_last_conv=0), r'upsample_before_last_conv must be an int >= 1, got 0'),
    (dict(upsample_before_last_conv=2.0), r'upsample_before_last_conv must be an int >= 1'),
    (dict(upsample_before_last_conv=2), r'upsample_before_last_conv=2 needs num_convs >= 2'),
    (dict(num_convs=2, hidden_channels=0), r'hidden_channels must be an int >= 1, got 0'),
])
def test_booster_head_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BoosterHead(16, 16, in_index=2, num_classes=19, **kwargs)
