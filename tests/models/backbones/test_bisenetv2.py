"""BiSeNetV2 backbone: output layout and specs, parity of both branches with mmseg's BiSeNetV2,
parameter counts from a layer-by-layer formula (checked against mmseg), argument checks."""
import pytest
import torch
from mmseg.models.backbones import BiSeNetV2 as MMSegBiSeNetV2

from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2
from mmseg_hrplus.models.backbones.bisenetv2 import ARCH_SETTINGS, BiSeNetV2
from mmseg_hrplus.models.decode_heads.bga_head import BilateralGuidedAggregation
from mmseg_hrplus.models.utils import FeatureSpec

pytestmark = pytest.mark.torch21


def count(module):
    return sum(p.numel() for p in module.parameters())


def conv_bn(cin, cout, k, groups=1):
    return cin // groups * cout * k * k + 2 * cout


def backbone_param_count(arch, in_channels=3):
    """BiSeNetV2 branches (no aggregation) counted layer by layer from the paper's Table 1."""
    total, prev = 0, in_channels
    for c, depth in zip(arch.detail_channels, arch.detail_depths):
        total += conv_bn(prev, c, 3) + (depth - 1) * conv_bn(c, c, 3)
        prev = c
    s = arch.semantic_channels[0]
    total += conv_bn(in_channels, s, 3) + conv_bn(s, s // 2, 1) + conv_bn(s // 2, s, 3)
    total += conv_bn(2 * s, s, 3)
    e, prev = arch.expand_ratio, s
    for c, depth in zip(arch.semantic_channels[1:], arch.semantic_depths):
        for i in range(depth):
            cin = prev if i == 0 else c
            total += conv_bn(cin, cin, 3) + conv_bn(cin * e, c, 1)
            if i == 0:  # strided: two depthwise convs and a depthwise-separable shortcut
                total += conv_bn(cin, cin * e, 3, cin) + conv_bn(cin * e, cin * e, 3, cin * e)
                total += conv_bn(cin, cin, 3, cin) + conv_bn(cin, c, 1)
            else:
                total += conv_bn(cin, cin * e, 3, cin)
        prev = c
    total += 2 * prev + conv_bn(prev, prev, 1) + conv_bn(prev, prev, 3)  # Context Embedding
    return total


def randomise_(module, seed=0):
    """Random weights AND random BN statistics, so that a wrong mapping cannot hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith(('running_mean', 'bias')):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif tensor.dim() == 1:  # BN weight
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:  # conv weight, scaled by fan-in to keep activations O(1)
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in)**0.5)
    return module


def test_outputs_match_out_specs_and_docstring_layout():
    model = BiSeNetV2().eval()
    assert model.out_names == ('detail', 'semantic', 'stem', 'stage3', 'stage4', 'stage5')
    assert model.out_specs == (FeatureSpec(128, 8), FeatureSpec(128, 32), FeatureSpec(16, 4),
                               FeatureSpec(32, 8), FeatureSpec(64, 16), FeatureSpec(128, 32))
    # 72 x 100 is not a multiple of 32: every stride-2 step rounds up.
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 72, 100))
    assert [tuple(o.shape) for o in outs] == [
        (1, 128, 9, 13), (1, 128, 3, 4), (1, 16, 18, 25), (1, 32, 9, 13), (1, 64, 5, 7),
        (1, 128, 3, 4)]


def test_large_preset_doubles_widths_and_triples_ge_layers():
    base, large = BiSeNetV2(arch='base'), BiSeNetV2(arch='large')
    assert [s.channels for s in large.out_specs] == [2 * s.channels for s in base.out_specs]
    assert [s.stride for s in large.out_specs] == [s.stride for s in base.out_specs]
    assert [len(st) for st in large.semantic_stages] == [6, 6, 12]
    assert [len(st) for st in base.semantic_stages] == [2, 2, 4]
    assert [len(st) for st in large.detail_branch] == [len(st) for st in base.detail_branch]
    large.eval()
    with torch.no_grad():
        outs = large(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (s.channels, 64 // s.stride, 64 // s.stride) for s in large.out_specs]


@pytest.mark.parametrize('arch', sorted(ARCH_SETTINGS))
def test_param_count_follows_the_layer_formula(arch):
    assert count(BiSeNetV2(arch=arch)) == backbone_param_count(ARCH_SETTINGS[arch])


def test_base_params_equal_mmseg_backbone_without_its_bga():
    ref = MMSegBiSeNetV2()
    ours = BiSeNetV2()
    assert count(ours) == count(ref) - count(ref.bga) == backbone_param_count(
        ARCH_SETTINGS['base'])


def test_branches_and_aggregation_match_mmseg_with_the_same_weights():
    ref = randomise_(MMSegBiSeNetV2()).eval()
    converted = convert_mmseg_bisenetv2({f'backbone.{k}': v for k, v in ref.state_dict().items()})
    ours = BiSeNetV2().eval()
    ours.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()
                          if k.startswith('backbone.')})
    bga = BilateralGuidedAggregation(128, 128, 128).eval()
    bga.load_state_dict({k[len('decode_head.bga.'):]: v for k, v in converted.items()
                         if k.startswith('decode_head.bga.')})

    x = torch.randn(2, 3, 72, 100)
    with torch.no_grad():
        detail, semantic, *taps = ours(x)
        ref_detail = ref.detail(x)
        ref_semantic = ref.semantic(x)  # [stem, stage3, stage4, stage5, after CE]
        ref_bga = ref.bga(ref_detail, ref_semantic[-1])
        our_bga = bga(detail, semantic)
    assert torch.equal(detail, ref_detail)
    assert torch.equal(semantic, ref_semantic[-1])
    for mine, theirs in zip(taps, ref_semantic[:-1]):
        assert torch.equal(mine, theirs)
    assert torch.equal(our_bga, ref_bga), (our_bga - ref_bga).abs().max().item()


def test_norm_cfg_reaches_every_layer_and_norm_eval_freezes_statistics():
    model = BiSeNetV2(norm_cfg=dict(type='GN', num_groups=4), semantic_channels=(16, 32, 64, 128))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    model = BiSeNetV2(norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(bns[0].running_mean, before)


def test_widths_and_depths_override_the_preset():
    model = BiSeNetV2(detail_channels=(8, 16), detail_depths=(1, 2),
                      semantic_channels=(4, 8, 16), semantic_depths=(1, 3), expand_ratio=2)
    assert model.out_specs == (FeatureSpec(16, 4), FeatureSpec(16, 16), FeatureSpec(4, 4),
                               FeatureSpec(8, 8), FeatureSpec(16, 16))
    assert model.out_names == ('detail', 'semantic', 'stem', 'stage3', 'stage4')
    with torch.no_grad():
        outs = model.eval()(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (s.channels, 32 // s.stride, 32 // s.stride) for s in model.out_specs]


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='xl'), r"arch='xl' is not supported; allowed values: 'base', 'large'"),
    (dict(detail_channels=(64, 0, 128)),
     r'detail_channels must be a non-empty sequence of ints >= 1, got \(64, 0, 128\)'),
    (dict(detail_depths=(2, 3)), r'detail_depths must be 3 ints >= 1, got \(2, 3\)'),
    (dict(semantic_channels=(15, 32, 64, 128)), r'semantic_channels must be an even Stem'),
    (dict(semantic_channels=(16,)), r'semantic_channels must be an even Stem'),
    (dict(semantic_depths=(2, 2, 0)), r'semantic_depths must be 3 ints >= 1, got \(2, 2, 0\)'),
    (dict(semantic_depths=(2, 2)), r'semantic_depths must be 3 ints >= 1, got \(2, 2\)'),
    (dict(expand_ratio=0), r'expand_ratio must be an int >= 1, got 0'),
    (dict(norm_cfg=None), r'norm_cfg must be a dict'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BiSeNetV2(**kwargs)
