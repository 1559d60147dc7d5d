"""HRNetV2pNeck: parity with mmdet's HRFPN, norm_cfg, pooling, any input size, validation."""
import pytest
import torch
from mmdet.models.necks import HRFPN

from mmseg_hrplus.models.necks.hrnetv2p import HRNetV2pNeck
from mmseg_hrplus.models.utils import FeatureSpec
from mmseg_hrplus.registry import MODELS

CHANNELS = [8, 16, 32, 64]


def _streams(channels, h, w, n=1):
    """HRNet-like streams: stream k has channels[k] channels at (h, w) / 2**k (ceil)."""
    return [torch.randn(n, c, -(-h // 2**k), -(-w // 2**k)) for k, c in enumerate(channels)]


def _randomize(module):
    """Non-trivial weights and BN statistics so parity cannot pass by accident."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + ('var' in name))


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(pooling_type='MAX'),
    dict(num_outs=4, stride=2),
    dict(num_outs=1),
])
def test_loads_hrfpn_state_dict_and_matches(kwargs):
    ref = HRFPN(in_channels=CHANNELS, out_channels=24, **kwargs).eval()
    _randomize(ref)
    ours = HRNetV2pNeck(in_channels=CHANNELS, out_channels=24, **kwargs).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats = _streams(CHANNELS, 64, 96, n=2)
    with torch.no_grad():
        expected, got = ref(feats), ours(feats)
    assert len(got) == len(expected) == kwargs.get('num_outs', 5)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        assert (g - e).abs().max().item() == 0.0


def test_registered_and_default_shapes():
    neck = MODELS.build(dict(type='mmseg_hrplus.HRNetV2pNeck', in_channels=CHANNELS,
                             out_channels=16))
    assert isinstance(neck, HRNetV2pNeck)
    outs = neck(_streams(CHANNELS, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 64 // 2**i, 64 // 2**i) for i in range(5)]


def test_any_input_size_resizes_to_stream0():
    # Streams of an HRNet input of 400x600 px: 100x150, 50x75, 25x38, 13x19 (not 2x apart).
    feats = _streams(CHANNELS, 100, 150)
    neck = HRNetV2pNeck(in_channels=CHANNELS, out_channels=8).eval()
    with torch.no_grad():
        outs = neck(feats)
    assert [tuple(o.shape[2:]) for o in outs] == [(100 // 2**i, 150 // 2**i) for i in range(5)]
    # mmdet's fixed 2**k factor cannot concatenate these streams.
    ref = HRFPN(in_channels=CHANNELS, out_channels=8).eval()
    with pytest.raises(RuntimeError):
        ref(feats)
    # Level 0 equals the reduction conv of the exact-size bilinear concat.
    size = feats[0].shape[2:]
    cat = torch.cat([feats[0]] + [torch.nn.functional.interpolate(
        f, size=size, mode='bilinear', align_corners=False) for f in feats[1:]], 1)
    with torch.no_grad():
        manual = neck.fpn_convs[0](neck.reduction_conv(cat))
    assert torch.equal(manual, outs[0])  # the same ops on the same data


def test_norm_cfg_adds_norm_layers():
    plain = HRNetV2pNeck(in_channels=CHANNELS, out_channels=16)
    neck = HRNetV2pNeck(in_channels=CHANNELS, out_channels=16, norm_cfg=dict(type='BN'))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    norms = [m for m in neck.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 1 + 5
    assert neck.reduction_conv.conv.bias is None and plain.reduction_conv.conv.bias is not None
    keys = set(neck.state_dict())
    assert {'reduction_conv.bn.running_mean', 'fpn_convs.4.bn.weight'} <= keys
    # In training mode the last op of every level is BN: zero mean, unit variance per channel.
    neck.train()
    outs = neck(_streams(CHANNELS, 32, 32, n=2))
    for o in outs[:3]:
        assert o.mean(dim=(0, 2, 3)).abs().max().item() < 1e-5
        assert (o.var(dim=(0, 2, 3), unbiased=False) - 1).abs().max().item() < 1e-2


def test_with_cp_same_outputs_and_grads():
    ref = HRNetV2pNeck(in_channels=CHANNELS, out_channels=8).train()
    cp = HRNetV2pNeck(in_channels=CHANNELS, out_channels=8, with_cp=True).train()
    cp.load_state_dict(ref.state_dict())
    feats = _streams(CHANNELS, 32, 32)
    feats_ref = [f.clone().requires_grad_() for f in feats]
    feats_cp = [f.clone().requires_grad_() for f in feats]
    sum(o.square().sum() for o in ref(feats_ref)).backward()
    sum(o.square().sum() for o in cp(feats_cp)).backward()
    # checkpointing recomputes the same ops on the same data: bit for bit
    for a, b in zip(feats_ref, feats_cp):
        assert torch.equal(a.grad, b.grad)
    assert torch.equal(ref.reduction_conv.conv.weight.grad, cp.reduction_conv.conv.weight.grad)


def test_check_inputs_against_backbone_specs():
    neck = HRNetV2pNeck(in_channels=CHANNELS, out_channels=16)
    specs = tuple(FeatureSpec(c, 4 * 2**k) for k, c in enumerate(CHANNELS))
    assert neck.check_inputs(specs) == tuple(FeatureSpec(16, 4 * 2**i) for i in range(5))
    wrong = tuple(FeatureSpec(c * 2, s) for c, s in specs)
    with pytest.raises(ValueError, match=r'HRNetV2pNeck: in_channels=\[8, 16, 32, 64\]'):
        neck.check_inputs(wrong)
    with pytest.raises(ValueError, match='out of range'):
        neck.check_inputs(specs[:2])


@pytest.mark.parametrize('kwargs, match', [
    (dict(pooling_type='SUM'), r"pooling_type='SUM' is not supported; allowed values: "
                               r"'AVG', 'MAX'"),
    (dict(in_channels=[]), r'in_channels must be a non-empty sequence of ints >= 1, got \[\]'),
    (dict(in_channels=32), r'in_channels must be a non-empty sequence of ints >= 1, got 32'),
    (dict(in_channels=[8, 0]), r'in_channels must be a non-empty sequence of ints >= 1, '
                               r'got \[8, 0\]'),
    (dict(out_channels=0), 'out_channels must be an int >= 1, got 0'),
    (dict(num_outs=0), 'num_outs must be an int >= 1, got 0'),
    (dict(stride=0), 'stride must be an int >= 1, got 0'),
])
def test_invalid_arguments(kwargs, match):
    args = dict(in_channels=CHANNELS, out_channels=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        HRNetV2pNeck(**args)


def test_forward_errors():
    neck = HRNetV2pNeck(in_channels=CHANNELS, out_channels=8)
    with pytest.raises(ValueError, match='built for 4 input streams'):
        neck(_streams(CHANNELS[:3], 32, 32))
    with pytest.raises(ValueError, match=r'stream 0 is \(8, 32\): num_outs=5 pools it by 16'):
        neck(_streams(CHANNELS, 8, 32))


def test_behind_our_bilinear_hrnet_on_sides_not_multiple_of_32():
    from mmseg_hrplus.models.backbones.hrnet import HRNet
    narrow = dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ),
                    num_channels=(8, )),
        **{f'stage{s}': dict(num_modules=1, num_branches=s, block='BASIC', num_blocks=(1, ) * s,
                             num_channels=tuple(CHANNELS[:s])) for s in (2, 3, 4)})
    backbone = HRNet(extra=narrow, upsample_mode='bilinear').eval()
    neck = HRNetV2pNeck(in_channels=CHANNELS, out_channels=16).eval()
    assert [s.stride for s in neck.check_inputs(backbone.out_specs)] == [4, 8, 16, 32, 64]
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 100, 150))    # streams 25x38, 13x19, 7x10, 4x5
        outs = neck(feats)
    assert [tuple(f.shape[2:]) for f in feats] == [(25, 38), (13, 19), (7, 10), (4, 5)]
    assert [tuple(o.shape) for o in outs] == [(1, 16, 25 // 2**i, 38 // 2**i) for i in range(5)]
    assert all(torch.isfinite(o).all() for o in outs)
