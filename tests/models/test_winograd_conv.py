"""WinogradConv2d / winograd_conv3x3: equal to F.conv2d up to float rounding, forward and
backward, in both memory formats; a drop-in nn.Conv2d for configs (conv_cfg) and checkpoints."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from mmengine.registry import init_default_scope

from float_bounds import WINOGRAD_ONE_CONV, assert_close_relative
from mmseg_hrplus.models.layers import WinogradConv2d, winograd_conv3x3
from mmseg_hrplus.testing import relative_error

pytestmark = pytest.mark.usefixtures('one_thread')
TOLERANCE = WINOGRAD_ONE_CONV  # relative to the output's scale, per tile size


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('shape', [
    (1, 16, 8, 12),    # whole tiles
    (2, 8, 7, 13),     # partial last tiles, batch 2
    (1, 4, 1, 1),      # a single pixel
])
@pytest.mark.parametrize('channels_last', [True, False])
def test_forward_and_backward_equal_direct_conv(tile, shape, channels_last):
    torch.manual_seed(0)
    n, c, h, w = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
    weight = torch.randn(2 * c + 1, c, 3, 3, requires_grad=True)
    bias = torch.randn(2 * c + 1, requires_grad=True)
    grad_y = torch.randn(n, 2 * c + 1, h, w)

    expected = F.conv2d(x, weight, bias, padding=1)
    expected_grads = torch.autograd.grad(expected, (x, weight, bias), grad_y)
    got = winograd_conv3x3(x, weight, bias, tile)
    got_grads = torch.autograd.grad(got, (x, weight, bias), grad_y)

    assert got.shape == expected.shape
    if channels_last and c > 1:
        assert got.is_contiguous(memory_format=torch.channels_last)
    else:
        assert got.is_contiguous()
    assert_close_relative(got, expected, TOLERANCE[tile], f'F({tile}x{tile}) forward')
    for name, g, e in zip(('input', 'weight', 'bias'), got_grads, expected_grads):
        assert g.shape == e.shape, name
        assert_close_relative(g, e, TOLERANCE[tile], f'F({tile}x{tile}) {name} gradient')
    assert got_grads[0].is_contiguous(memory_format=fmt)


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: winograd_conv3x3(*a, tile=4), (x, weight, bias))


def test_layer_is_a_drop_in_conv2d():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, padding=1, bias=False)
    layer = WinogradConv2d(16, 24, 3, padding=1, bias=False, min_channels=16)
    assert set(layer.state_dict()) == set(conv.state_dict()) == {'weight'}
    layer.load_state_dict(conv.state_dict())
    x = torch.randn(2, 16, 10, 18)
    assert layer.uses_winograd
    with torch.no_grad():
        first = layer(x)
        assert_close_relative(first, conv(x), TOLERANCE[4], 'WinogradConv2d vs Conv2d')
        # The cached filters follow an in-place weight update (e.g. an optimizer step).
        layer.weight.mul_(2)
        # Scaling by 2 commutes with every rounding, so the result is exactly twice the first.
        assert torch.equal(layer(x), 2 * first)
    # With gradients it trains like the conv it replaces.
    layer.weight.grad = None
    layer(x).square().sum().backward()
    conv.weight.data.copy_(layer.weight.data)
    conv(x).square().sum().backward()
    assert_close_relative(layer.weight.grad, conv.weight.grad, TOLERANCE[4],
                          'WinogradConv2d vs Conv2d weight gradient')


@pytest.mark.parametrize('kwargs', [dict(stride=2, padding=1), dict(padding=0),
                                    dict(groups=2, padding=1), dict(dilation=2, padding=2)])
def test_other_shapes_run_as_plain_conv(kwargs):
    torch.manual_seed(0)
    layer = WinogradConv2d(16, 16, 3, min_channels=1, **kwargs)
    assert not layer.uses_winograd
    x = torch.randn(1, 16, 9, 9)
    assert torch.equal(layer(x), F.conv2d(x, layer.weight, layer.bias, layer.stride,
                                          layer.padding, layer.dilation, layer.groups))


def test_narrow_convs_run_as_plain_conv():
    layer = WinogradConv2d(8, 8, 3, padding=1)  # min_channels=96 by default
    assert not layer.uses_winograd
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(layer(x), F.conv2d(x, layer.weight, layer.bias, padding=1))


def test_built_from_conv_cfg_in_any_scope():
    for scope in ('mmseg', 'mmdet'):
        init_default_scope(scope)
        layer = build_conv_layer(dict(type='mmseg_hrplus.WinogradConv2d', min_channels=4),
                                 8, 8, 3, padding=1, bias=False)
        assert isinstance(layer, WinogradConv2d) and layer.uses_winograd


def test_bad_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match=r'tile=3 is not supported; allowed values: 2, 4'):
        WinogradConv2d(4, 4, 3, padding=1, tile=3)
    with pytest.raises(ValueError, match=r'min_channels=0 must be >= 1'):
        WinogradConv2d(4, 4, 3, padding=1, min_channels=0)
    with pytest.raises(ValueError, match=r'expects \(N, 4, H, W\) inputs, got \(1, 5, 4, 4\)'):
        WinogradConv2d(4, 4, 3, padding=1, min_channels=1)(torch.zeros(1, 5, 4, 4))


def test_hrnet_trains_the_same_with_winograd_convs():
    """Three SGD steps of a small HRNet built with conv_cfg=WinogradConv2d (every 3x3 stride-1
    conv from 8 channels up) end at the parameters of the plain build. In float64, so that
    the comparison shows the algorithm is exact: in float32 the rounding differences grow
    over the steps about as much as float32's own difference to float64 (0.7% of a parameter
    after 3 steps here, with or without Winograd)."""
    from mmseg_hrplus.models.backbones import HRNet
    from mmseg_hrplus.testing import tiny_hrnet_extra

    torch.manual_seed(0)
    extra = tiny_hrnet_extra(widths=(8, 16, 32, 64), stem_channels=16)
    plain = HRNet(extra=extra).double()
    fast = HRNet(extra=extra, conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d',
                                            min_channels=8)).double()
    fast.load_state_dict(plain.state_dict())
    layers = [m for m in fast.modules() if isinstance(m, WinogradConv2d) and m.uses_winograd]
    assert len(layers) >= 16
    initial = {name: p.detach().clone() for name, p in plain.named_parameters()}
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    for model in (plain, fast):
        model.train()
        optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            optim.zero_grad()
            sum(out.square().mean() for out in model(x)).backward()
            optim.step()
    change = max(relative_error(p.detach(), initial[name])
                 for name, p in plain.named_parameters())
    assert change > 1e-2  # the steps did train
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert relative_error(q.detach(), p.detach()) < 1e-10, name
