"""WinogradConv2d / winograd_conv3x3: equal to F.conv2d up to float rounding, forward and
backward, in both memory formats; a drop-in nn.Conv2d for configs (conv_cfg) and checkpoints."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from mmengine.registry import init_default_scope

from mmseg_hrplus.models.layers import WinogradConv2d, winograd_conv3x3
from tests.helpers.float_bounds import WINOGRAD_ONE_CONV, assert_close_relative
from tests.helpers.tiny_models import relative_error

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]
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
    with pytest.raises(ValueError, match=r'min_channels must be an int >= 1, got 0'):
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
    from tests.helpers.tiny_models import tiny_hrnet_extra

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


def _layer(c_in, c_out, **kwargs):
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    return WinogradConv2d.from_conv(conv, min_channels=1, **kwargs).eval(), conv.eval()


def test_filter_cache_follows_writes_through_data():
    """Writes through ``weight.data`` bump no version counter (asserted, so this test covers
    the case that used to leave stale filters): the outputs still follow the new weights."""
    torch.manual_seed(0)
    layer, _ = _layer(16, 16)
    x = torch.randn(1, 16, 8, 12)
    with torch.no_grad():
        before = layer(x)
        version = layer.weight._version
        new = torch.randn_like(layer.weight)
        layer.weight.data.copy_(new)
        assert layer.weight._version == version
        fresh, _ = _layer(16, 16)
        fresh.weight.copy_(new)
        fresh.bias.copy_(layer.bias)
        # the same ops on the same weights: bit for bit the fresh layer's output
        assert torch.equal(layer(x), fresh(x))
        assert not torch.equal(layer(x), before)
        # a permutation of the weights keeps their sum; the checksum still sees it
        layer.weight.data.copy_(new.flip(0))
        fresh.weight.copy_(new.flip(0))
        assert torch.equal(layer(x), fresh(x))
        # ``.data = ...`` (an EMA swap): new storage
        swapped = torch.randn_like(layer.weight)
        layer.weight.data = swapped
        fresh.weight.copy_(swapped)
        assert torch.equal(layer(x), fresh(x))


def test_autocast_and_bfloat16_run_the_plain_conv():
    """Under CPU autocast the layer is nn.Conv2d (autocast runs it in bfloat16), bit for bit;
    so it is for bfloat16 inputs without autocast."""
    torch.manual_seed(0)
    layer, conv = _layer(16, 16)
    x = torch.randn(1, 16, 8, 12)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        got, expected = layer(x), conv(x)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, expected)
    layer16, conv16 = layer.to(torch.bfloat16), conv.to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(layer16(x.bfloat16()), conv16(x.bfloat16()))
    # float32 outside autocast: Winograd (not bit-equal to the direct conv)
    with torch.no_grad():
        assert not torch.equal(layer.float()(x), conv.float()(x))


def test_autotune_keeps_the_measured_faster_path_per_shape(monkeypatch):
    """The decision logic with fixed 'measured' times: the faster path is kept, measured once
    per conv shape and shared by layers of the same shape; direct is nn.Conv2d bit for bit."""
    from mmseg_hrplus.models.layers.winograd import autotune as module
    module.clear_winograd_decisions()
    fake = iter([dict(winograd=0.96, direct=1.0), dict(winograd=1.0, direct=3.0)])
    calls = []
    monkeypatch.setattr(module, 'min_seconds', lambda fns: calls.append(set(fns)) or next(fake))
    torch.manual_seed(0)
    layer, conv = _layer(16, 16, autotune=True)
    other, _ = _layer(16, 16, autotune=True)
    small, large = torch.randn(1, 16, 8, 12), torch.randn(1, 16, 16, 12)
    with torch.no_grad():
        assert torch.equal(layer(small), conv(small))  # Winograd not 5% faster: direct
        other(small)  # same shape: no new measurement
        assert calls == [{'winograd', 'direct'}]
        assert_close_relative(layer(large), conv(large), TOLERANCE[4], 'autotuned Winograd')
        assert not torch.equal(layer(large), conv(large))  # Winograd was 'faster'
    decisions = module.winograd_decisions()
    assert len(calls) == 2 and len(decisions) == 2
    by_height = {shape.height: d for shape, d in decisions.items()}
    # 0.96: faster, but not by the 5% margin -> direct
    assert by_height[8] == ('direct', 0.96, 1.0) and by_height[16] == ('winograd', 1.0, 3.0)
    record = [r for r in module.winograd_decision_records() if r['height'] == 16][0]
    assert record == dict(in_channels=16, out_channels=16, batch=1, height=16, width=12, tile=4,
                          bias=True, channels_last=False, dtype='float32',
                          threads=torch.get_num_threads(), gradients='', choice='winograd',
                          winograd_s=1.0, direct_s=3.0)
    module.clear_winograd_decisions()


def test_autotune_in_training_times_forward_and_backward_per_gradient_kind(monkeypatch):
    """Calls with gradients get their own decision (forward + backward timed on copies, keyed
    on which gradients are needed): 'direct' gives nn.Conv2d's output and gradients bit for
    bit, 'winograd' the Winograd ones; the model's parameters get no gradient from the
    timing."""
    from mmseg_hrplus.models.layers.winograd import autotune as module
    module.clear_winograd_decisions()
    fake = iter([dict(winograd=2.0, direct=1.0), dict(winograd=1.0, direct=2.0)])
    timed = []

    def fake_min_seconds(fns):
        timed.append({name: fn() for name, fn in fns.items()})  # each path runs for real
        return next(fake)

    monkeypatch.setattr(module, 'min_seconds', fake_min_seconds)
    torch.manual_seed(0)
    layer, conv = _layer(16, 16, autotune=True)
    layer.train(), conv.train()
    x = torch.randn(2, 16, 8, 12)

    def step(net, inp):
        inp = inp.clone().requires_grad_(True)
        out = net(inp)
        out.square().sum().backward()
        grads = (inp.grad, net.weight.grad.clone(), net.bias.grad.clone())
        net.zero_grad()
        return out, grads

    out, grads = step(layer, x)  # first kind: input+weight -> 'direct'
    ref_out, ref_grads = step(conv, x)
    assert torch.equal(out, ref_out) and all(map(torch.equal, grads, ref_grads))
    # the timing ran both paths on copies: the gradients above equal nn.Conv2d's, so nothing
    # was added to the layer's parameters
    assert len(timed) == 1 and all(len(g) == 3 for g in timed[0].values())

    layer.weight.requires_grad_(False), conv.weight.requires_grad_(False)
    xi = x.clone().requires_grad_(True)
    out_w = layer(xi)  # second kind: input only -> 'winograd'
    assert_close_relative(out_w, conv(x), TOLERANCE[4], 'Winograd chosen in training')
    assert not torch.equal(out_w, conv(x))
    kinds = {shape.gradients: d.choice for shape, d in module.winograd_decisions().items()}
    assert kinds == {'input+weight': 'direct', 'input': 'winograd'}
    module.clear_winograd_decisions()


@pytest.mark.parametrize('channels,size', [(64, 48), (192, 32), (384, 16)])
def test_autotuned_layer_is_not_slower_than_direct_measured(channels, size):
    """Measured on the CPU running the test (one thread, minimum over interleaved rounds), on
    shapes of HRNet's wide streams, where a conv takes milliseconds: the autotuned layer's time
    is within 15% (timing noise and the per-call dispatch) of the direct conv's, and when
    Winograd was chosen it is measured faster than direct again here. A shared CI machine can
    be busy for a moment: a failed comparison is measured once more before it counts."""
    from mmseg_hrplus.models.layers.winograd import autotune as module
    from tests.helpers.float_bounds import WINOGRAD_AMPLIFICATION, float32_bound, rounding_growth
    module.clear_winograd_decisions()
    torch.manual_seed(0)
    layer, conv = _layer(channels, channels, autotune=True)
    layer, conv = (m.to(memory_format=torch.channels_last) for m in (layer, conv))
    x = torch.randn(1, channels, size, size).contiguous(memory_format=torch.channels_last)

    def measure():
        return module.min_seconds({'auto': lambda: layer(x), 'direct': lambda: conv(x),
                                   'winograd': lambda: layer._winograd_inference(x)},
                                  repeats=15, min_total_s=0.1)

    def fits(times):
        ok = times['auto'] <= 1.15 * times['direct']
        return ok and (decision.choice != 'winograd' or times['winograd'] <= 1.15 * times['direct'])

    with torch.no_grad():
        got = layer(x)
        decision = layer.decide(x)
        times = measure()
        if not fits(times):
            times = measure()
    print(f'\n{channels} ch {size}x{size}: chose {decision.choice} (tuning: winograd '
          f'{decision.winograd_s * 1e3:.2f} ms, direct {decision.direct_s * 1e3:.2f} ms); '
          f'now auto {times["auto"] * 1e3:.2f} ms, direct {times["direct"] * 1e3:.2f} ms, '
          f'winograd {times["winograd"] * 1e3:.2f} ms')
    assert times['auto'] <= 1.15 * times['direct'], times
    if decision.choice == 'winograd':
        assert decision.winograd_s <= module.AUTOTUNE_MARGIN * decision.direct_s
        assert times['winograd'] <= 1.15 * times['direct'], times
        bound = float32_bound(rounding_growth(channels, amplification=WINOGRAD_AMPLIFICATION[4])
                              + rounding_growth(9 * channels))
        assert_close_relative(got, conv(x), bound, f'autotuned Winograd, {channels} channels')
    else:
        assert decision.choice == 'direct'
        assert decision.winograd_s > module.AUTOTUNE_MARGIN * decision.direct_s
        assert torch.equal(got, conv(x))
    module.clear_winograd_decisions()
