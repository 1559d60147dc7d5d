"""DilatedResNet: parity with mmseg's ResNet / ResNetV1c, dilation layout, strides, contract."""
import pytest
import torch
import torch.nn as nn
from mmseg.models.backbones import ResNet, ResNetV1c

from mmseg_hrplus.models.backbones.dilated_resnet import (DilatedResNet,
                                                          stage_strides_and_dilations)
from mmseg_hrplus.models.utils import FeatureSpec

R101_D8_MMSEG = dict(depth=101, deep_stem=False, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                     contract_dilation=False)


def randomize_(module: nn.Module, seed: int = 0) -> None:
    """Give every weight and BN buffer a random value (default init zeroes each block's
    last BN, which would hide the residual branch from a parity test)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith('running_mean') or name.endswith('bias'):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 1:  # norm weight
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.5)
            else:  # conv weight, He-scaled so that activations stay O(1)
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5)


def max_abs_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def all_equal(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def check_parity(ours: nn.Module, ref: nn.Module, size: int = 32, backward: bool = False) -> dict:
    """Load ref's weights into ours (strict: same keys), compare eval and train forward,
    running statistics after the train step and (optionally) input gradients. Our blocks run
    mmseg's ops in mmseg's order, so everything is bit for bit equal (on any CPU).

    Returns:
        The max abs differences, by name (all 0).
    """
    randomize_(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, size, size)
    diffs = {}
    ours.eval(), ref.eval()
    with torch.no_grad():
        out_ours, out_ref = ours(x), ref(x)
    assert [o.shape for o in out_ours] == [o.shape for o in out_ref]
    diffs['eval'] = max_abs_diff(out_ours, out_ref)
    equal = {'eval': all_equal(out_ours, out_ref)}

    ours.train(), ref.train()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ours, out_ref = ours(xa), ref(xb)
    diffs['train'] = max_abs_diff(out_ours, out_ref)
    equal['train'] = all_equal(out_ours, out_ref)
    if backward:
        sum(o.square().mean() for o in out_ours).backward()
        sum(o.square().mean() for o in out_ref).backward()
        diffs['input_grad'] = (xa.grad - xb.grad).abs().max().item()
        equal['input_grad'] = torch.equal(xa.grad, xb.grad)
    sd_ours, sd_ref = ours.state_dict(), ref.state_dict()
    keys = [k for k in sd_ref if 'running' in k]
    diffs['buffers'] = max_abs_diff([sd_ours[k].float() for k in keys],
                                    [sd_ref[k].float() for k in keys])
    equal['buffers'] = all_equal([sd_ours[k] for k in keys], [sd_ref[k] for k in keys])
    print({k: f'{v:.3g}' for k, v in diffs.items()})
    assert all(equal.values()), (equal, diffs)
    return diffs


@pytest.fixture(scope='module')
def r101_d8():
    return DilatedResNet(depth=101, output_stride=8, stem='v1')


def test_parity_r101_v1_with_mmseg_resnet(r101_d8):
    check_parity(r101_d8, ResNet(**R101_D8_MMSEG), size=64)


@pytest.mark.parametrize('stem, output_stride, contract', [
    ('v1', 8, False),
    ('deep', 8, True),  # mmseg's -d8 configs: ResNetV1c with contract_dilation=True
    ('deep', 8, False),
    ('deep', 16, True),
])
def test_parity_r50_with_mmseg(stem, output_stride, contract):
    strides, dilations = stage_strides_and_dilations(output_stride)
    ours = DilatedResNet(depth=50, output_stride=output_stride, stem=stem,
                         contract_dilation=contract)
    ref_cls = ResNetV1c if stem == 'deep' else ResNet
    ref = ref_cls(depth=50, strides=strides, dilations=dilations, contract_dilation=contract)
    # One case also compares gradients (the blocks are shared code, so one is enough).
    check_parity(ours, ref, size=64 if stem == 'v1' else 32, backward=stem == 'v1')


def test_parity_caffe_style_and_multi_grid():
    # Our multi_grid multiplies the stage dilation (DeepLabv3); mmseg takes absolute rates.
    ours = DilatedResNet(depth=50, output_stride=16, style='caffe', multi_grid=(1, 2, 4))
    ref = ResNet(depth=50, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2), style='caffe',
                 multi_grid=(2, 4, 8))
    assert [b.conv2.dilation[0] for b in ours.layer4] == [2, 4, 8]
    assert ours.layer2[0].conv1.stride == (2, 2) and ours.layer2[0].conv2.stride == (1, 1)
    check_parity(ours, ref)


def test_frozen_stages_norm_eval_with_cp():
    net = DilatedResNet(depth=50, frozen_stages=2, norm_eval=True, with_cp=True,
                        out_indices=(3, ), base_channels=16, stem_channels=16)
    net.train()
    for name, param in net.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1', 'layer2'))
        assert param.requires_grad is not frozen, name
    assert all(not m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    # with_cp is the backbone's (each block checkpointed with its BN statistics kept, see
    # tests/models/utils/test_checkpointing.py), not mmseg's blocks' (which update them twice)
    assert net.with_cp and not any(b.with_cp for layer in (net.layer1, net.layer4) for b in layer)
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    net(x)[0].mean().backward()
    assert net.layer4[0].conv2.weight.grad is not None
    assert net.layer1[0].conv2.weight.grad is None

    deep = DilatedResNet(depth=50, stem='deep', frozen_stages=0, base_channels=16).train()
    assert all(not p.requires_grad for p in deep.stem.parameters())
    assert not deep.stem[1].training and deep.layer1[0].bn1.training


def test_every_res4_res5_3x3_conv_is_dilated_2_and_4(r101_d8):
    """DeepLabv2: res4 (layer3) and res5 (layer4) keep 1/8; every block dilates by 2 / 4."""
    for layer_name, rate, num_blocks in (('layer3', 2, 23), ('layer4', 4, 3)):
        convs3 = [m for m in getattr(r101_d8, layer_name).modules()
                  if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(convs3) == num_blocks
        for conv in convs3:
            assert conv.dilation == (rate, rate) and conv.padding == (rate, rate)
            assert conv.stride == (1, 1)
        strided = [m for m in getattr(r101_d8, layer_name).modules()
                   if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
        assert strided == []
    for layer_name in ('layer1', 'layer2'):
        assert all(m.dilation == (1, 1) for m in getattr(r101_d8, layer_name).modules()
                   if isinstance(m, nn.Conv2d))
    # mmseg's contraction, for comparison: only the first block of each stage is halved.
    contracted = DilatedResNet(depth=50, contract_dilation=True)
    assert [b.conv2.dilation[0] for b in contracted.layer3] == [1, 2, 2, 2, 2, 2]
    assert [b.conv2.dilation[0] for b in contracted.layer4] == [2, 4, 4]


@pytest.mark.parametrize('output_stride, strides, dilations', [
    (8, (1, 2, 1, 1), (1, 1, 2, 4)),
    (16, (1, 2, 2, 1), (1, 1, 1, 2)),
    (32, (1, 2, 2, 2), (1, 1, 1, 1)),
])
def test_output_strides(output_stride, strides, dilations):
    assert stage_strides_and_dilations(output_stride) == (strides, dilations)
    net = DilatedResNet(depth=50, output_stride=output_stride, base_channels=16,
                        stem_channels=16).eval()
    assert (net.strides, net.dilations) == (strides, dilations)
    with torch.no_grad():
        outs = net(torch.rand(1, 3, 64, 96))
    expected_strides = (4, 8, min(16, output_stride), output_stride)
    assert net.out_specs == tuple(
        FeatureSpec(64 * 2**i, s) for i, s in enumerate(expected_strides))
    for out, spec in zip(outs, net.out_specs):
        assert tuple(out.shape) == (1, spec.channels, 64 // spec.stride, 96 // spec.stride)


def test_out_indices_and_specs_follow_built_layers():
    net = DilatedResNet(depth=50, output_stride=8, stem='deep', out_indices=(3, 1))
    assert net.out_indices == (1, 3)
    assert net.out_specs == (FeatureSpec(512, 8), FeatureSpec(2048, 8))
    with torch.no_grad():
        outs = net.eval()(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 512, 4, 4), (1, 2048, 4, 4)]


def test_default_init_zeroes_last_bn_of_each_block():
    net = DilatedResNet(depth=50, base_channels=16, stem_channels=16)
    net.init_weights()
    assert all(b.norm3.weight.abs().sum() == 0 for b in net.layer3)
    assert all((b.norm1.weight == 1).all() for b in net.layer3)
    assert net.layer3[0].conv2.weight.std() > 0


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(output_stride=4), r'DilatedResNet: output_stride=4 .*allowed values: 8, 16, 32$'),
    (dict(depth=34), r'depth=34 .*allowed values: 50, 101, 152$'),
    (dict(stem='v1c'), r"stem='v1c' .*allowed values: 'v1', 'deep'$"),
    (dict(style='tf'), r"style='tf' .*allowed values: 'pytorch', 'caffe'$"),
    (dict(out_indices=(4, )), r'out_indices=\(4,\)'),
    (dict(out_indices=()), r'out_indices=\(\)'),
    (dict(frozen_stages=5), r'frozen_stages=5 .*allowed values'),
    (dict(multi_grid=(1, 2)), r'multi_grid=\(1, 2\) must hold 3 positive ints'),
])
def test_bad_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DilatedResNet(**{'depth': 50, **kwargs})
