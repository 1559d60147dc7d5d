"""BGAHead: exact parity of the aggregation with mmseg's BGALayer, any stride ratio and widths
(HRNet-W18: 18 ch at 1/4 with 144 ch at 1/32), no dead parameters, checks at build time."""
import math

import pytest
import torch
from mmseg.models.backbones.bisenetv2 import BGALayer
from mmseg.registry import MODELS as MMSEG_MODELS

from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2
from mmseg_hrplus.models.backbones.bisenetv2 import BiSeNetV2
from mmseg_hrplus.models.decode_heads.bga_head import BGAHead, BilateralGuidedAggregation
from mmseg_hrplus.models.utils import FeatureSpec

HRNET_W18_SPECS = (FeatureSpec(18, 4), FeatureSpec(36, 8), FeatureSpec(72, 16),
                   FeatureSpec(144, 32))


def randomise_(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith('running_var') or (tensor.dim() == 1 and name.endswith('weight')):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.dim() == 1:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / tensor[0].numel()**0.5)
    return module


def test_bga_equals_mmseg_bga_layer_with_the_same_weights():
    ref = randomise_(BGALayer(128)).eval()
    converted = convert_mmseg_bisenetv2({f'backbone.bga.{k}': v
                                         for k, v in ref.state_dict().items()})
    ours = BilateralGuidedAggregation(128, 128, 128, stride_ratio=4).eval()
    ours.load_state_dict({k[len('decode_head.bga.'):]: v for k, v in converted.items()})
    # 1/8 and 1/32 maps of a 72 x 100 image (sizes rounded up at each stride-2 step).
    detail, semantic = torch.randn(2, 128, 9, 13), torch.randn(2, 128, 3, 4)
    with torch.no_grad():
        got, expected = ours(detail, semantic), ref(detail, semantic)
    # the same ops in the same order: bit for bit (the message shows the difference otherwise)
    assert torch.equal(got, expected), (got - expected).abs().max().item()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize('ratio', [1, 2, 3, 4, 6, 8, 16])
def test_detail_down_path_lands_on_the_semantic_grid(ratio):
    bga = BilateralGuidedAggregation(6, 10, 8, stride_ratio=ratio).eval()
    for h, w in [(8, 9), (13, 25), (32, 31)]:
        with torch.no_grad():
            low = bga.detail_down(torch.rand(1, 6, h, w))
        assert tuple(low.shape) == (1, 8, math.ceil(h / ratio), math.ceil(w / ratio))


def test_ratio_4_down_path_is_the_papers_conv_and_pool():
    conv, pool = BilateralGuidedAggregation(128, 128, 128).detail_down
    assert conv.conv.stride == (2, 2) and conv.conv.kernel_size == (3, 3)
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)


def test_hrnet_w18_inputs_1_4_and_1_32():
    head = MMSEG_MODELS.build(dict(
        type='mmseg_hrplus.BGAHead', in_channels=(18, 144), in_index=(0, 3), stride_ratio=8,
        bga_channels=32, channels=48, num_classes=19)).eval()
    assert head.check_inputs(HRNET_W18_SPECS) == (FeatureSpec(18, 4), FeatureSpec(144, 32))
    # HRNet-W18 maps of a 72 x 100 image.
    feats = [torch.randn(2, c, math.ceil(72 / s), math.ceil(100 / s)) for c, s in HRNET_W18_SPECS]
    with torch.no_grad():
        assert tuple(head(feats).shape) == (2, 19, 18, 25)
        # A backbone that rounds sizes down still works: the down path is resized.
        feats[3] = feats[3][:, :, :2, :3]
        assert tuple(head(feats).shape) == (2, 19, 18, 25)


def test_maps_that_do_not_fit_stride_ratio_are_refused():
    """A wrong stride_ratio (here 4 for HRNet's 1/4 and 1/32 maps) used to train silently on
    resized maps under mmseg's own train.py; now forward names the ratio and the shapes."""
    head = BGAHead(in_channels=(18, 144), in_index=(0, 3), stride_ratio=4, channels=16,
                   bga_channels=24, num_classes=5).eval()
    feats = [torch.randn(1, c, math.ceil(64 / s), math.ceil(128 / s)) for c, s in HRNET_W18_SPECS]
    with pytest.raises(ValueError, match=r'BGAHead: stride_ratio=4 but the detail map is '
                       r'\(16, 32\) and the semantic map \(2, 4\) \(ratio 8x8\); set '
                       r'stride_ratio to'):
        head(feats)


def test_every_parameter_gets_a_gradient_in_one_backward():
    head = BGAHead(in_channels=(18, 144), in_index=(0, 1), stride_ratio=8, channels=16,
                   bga_channels=24, num_classes=5, norm_cfg=dict(type='BN')).train()
    feats = [torch.randn(2, 18, 16, 16), torch.randn(2, 144, 2, 2)]
    head(feats).square().mean().backward()
    names = [n for n, p in head.named_parameters()]
    assert 'conv_seg.weight' in names and 'seg_conv.conv.weight' in names
    dead = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert dead == []


def test_check_inputs_against_bisenetv2_and_mismatches():
    head = BGAHead(num_classes=19)
    assert head.check_inputs(BiSeNetV2().out_specs) == (FeatureSpec(128, 8),
                                                        FeatureSpec(128, 32))
    with pytest.raises(ValueError, match=r'stride_ratio=4 but the maps at in_index=\[0, 3\] '
                                         r'have strides 4 and 32 \(ratio 8\)'):
        BGAHead(in_channels=(18, 144), in_index=(0, 3), num_classes=19).check_inputs(
            HRNET_W18_SPECS)
    with pytest.raises(ValueError, match=r'in_channels=\[18, 128\].*channels \[18, 144\]'):
        BGAHead(in_channels=(18, 128), in_index=(0, 3), stride_ratio=8,
                num_classes=19).check_inputs(HRNET_W18_SPECS)
    with pytest.raises(ValueError, match=r'in_index 7 is out of range'):
        BGAHead(in_index=(0, 7), num_classes=19).check_inputs(BiSeNetV2().out_specs)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=128), r'in_channels must be 2 ints >= 1 \(detail, semantic\), got 128'),
    (dict(in_channels=(128, 0)), r'in_channels must be 2 ints >= 1 \(detail, semantic\), '
                                 r'got \(128, 0\)'),
    (dict(in_index=(0,)), r'in_index must be 2 ints \(detail, semantic\), got \(0,\)'),
    (dict(in_index=0), r'in_index must be 2 ints \(detail, semantic\), got 0'),
    (dict(channels=0), r'channels must be an int >= 1, got 0'),
    (dict(bga_channels=-1), r'bga_channels must be an int >= 1, got -1'),
    (dict(stride_ratio=2.5), r'stride_ratio must be an int >= 1, got 2.5'),
    (dict(input_transform='resize_concat'), r"input_transform must be 'multiple_select'"),
])
def test_bad_arguments_raise_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BGAHead(num_classes=19, **kwargs)
