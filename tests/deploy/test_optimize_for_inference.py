"""optimize_for_inference: BN folding, channels_last and the HRNetV2 head factorisation keep the
logits of HRNet+FCN, BiSeNetV2+BGA and DilatedResNet+ASPP (small models, small inputs)."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg_hrplus.deploy import optimize_for_inference
from mmseg_hrplus.deploy.optimize import fold_batchnorms, fold_bn_into_conv, winograd_settings
from mmseg_hrplus.models.backbones.hrnet import arch_to_extra
from mmseg_hrplus.models.decode_heads import ResizeSumFCNHead
from mmseg_hrplus.models.layers import WinogradConv2d
from tests.helpers.float_bounds import DEEP, SHALLOW, WINOGRAD_DEEP, assert_close_relative

pytestmark = pytest.mark.usefixtures('one_thread')
PREPROCESSOR = dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3)
HRNET_W18S_WIDTHS = [18, 36, 72, 144]


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN parameters and statistics, so that folding has something to fold."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))


def _build(backbone: dict, decode_head: dict) -> nn.Module:
    init_default_scope('mmseg')
    model = MODELS.build(dict(type='EncoderDecoder', data_preprocessor=PREPROCESSOR,
                              backbone=backbone, decode_head=decode_head,
                              test_cfg=ConfigDict(mode='whole')))
    model.init_weights()
    _randomize_bn(model)
    return model.eval()


HRNET_FCN_HEAD = dict(
    type='FCNHead', in_channels=HRNET_W18S_WIDTHS, in_index=(0, 1, 2, 3),
    channels=sum(HRNET_W18S_WIDTHS), input_transform='resize_concat', kernel_size=1,
    num_convs=1, concat_input=False, dropout_ratio=-1, num_classes=19, align_corners=False)


def hrnet_fcn() -> nn.Module:
    return _build(dict(type='mmseg_hrplus.HRNet', arch='w18_small'), HRNET_FCN_HEAD)


def bisenetv2_bga() -> nn.Module:
    return _build(
        dict(type='mmseg_hrplus.BiSeNetV2', arch='base'),
        dict(type='mmseg_hrplus.BGAHead', in_channels=(128, 128), in_index=(0, 1),
             bga_channels=128, stride_ratio=4, channels=64, num_classes=19,
             align_corners=False))


def resnet_aspp() -> nn.Module:
    return _build(
        dict(type='mmseg_hrplus.DilatedResNet', depth=50, base_channels=8, stem_channels=16,
             output_stride=8, out_indices=(3, )),
        dict(type='mmseg_hrplus.ASPPHead', in_channels=256, in_index=0, num_classes=19,
             dilations=(2, 4)))


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x, mode='tensor')


@pytest.mark.parametrize('factory,size,left', [
    (hrnet_fcn, (64, 128), set()),
    (hrnet_fcn, (70, 130), set()),  # odd stream sizes (18x33 ... 3x5)
    (bisenetv2_bga, (64, 128), {'backbone.context.gap_norm'}),  # BN after pooling: kept
    (resnet_aspp, (48, 64), set()),
])
def test_logits_unchanged_and_bn_folded(factory, size, left):
    model = factory()
    x = torch.randn(1, 3, *size)
    expected = _logits(model, x)
    num_bn = sum(isinstance(m, _BatchNorm) for m in model.modules())
    fast = optimize_for_inference(model)
    got = _logits(fast, x)
    assert got.shape == expected.shape
    # BN folded into the conv weights, channels_last kernels: every layer sums in another order
    assert_close_relative(got, expected, DEEP, f'{factory.__name__} {size} optimized')
    remaining = {name for name, m in fast.named_modules() if isinstance(m, _BatchNorm)}
    assert remaining == left
    # the input model is untouched (a copy is returned)
    assert sum(isinstance(m, _BatchNorm) for m in model.modules()) == num_bn
    assert torch.equal(_logits(model, x), expected)
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(
        c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not any(p.requires_grad for p in fast.parameters())
    assert not fast.training


def test_head_factorisation_equals_concat_form():
    model = hrnet_fcn()
    x = torch.randn(2, 3, 70, 130)
    concat = optimize_for_inference(model, channels_last=False, factorize_head=False)
    factorized = optimize_for_inference(model, channels_last=False, factorize_head=True)
    assert type(concat.decode_head) is FCNHead
    assert type(factorized.decode_head) is ResizeSumFCNHead
    a, b = _logits(concat, x), _logits(factorized, x)
    # the head's 1x1 conv over 270 concatenated channels vs 4 per-stream convs, resized, summed
    assert_close_relative(b, a, SHALLOW, 'factorised vs concat head')
    # without BN folding the head's BN stays after the factorised sum: still equal
    unfolded = optimize_for_inference(model, channels_last=False, fold_bn=False,
                                      factorize_head=True)
    assert_close_relative(_logits(unfolded, x), a, SHALLOW, 'factorised head, BN unfolded')
    # 'auto' (the default) replaces the head where its stream channels are known (out_specs)
    auto = optimize_for_inference(model, channels_last=False)
    assert type(auto.decode_head) is ResizeSumFCNHead
    # the predict path (resize to the image, argmax) works on the factorised head
    preds = factorized.predict(x)
    assert preds[0].pred_sem_seg.data.shape == (1, 70, 130)


def _assert_same_state(got: dict, expected: dict, what: str) -> None:
    assert list(got) == list(expected), what
    for key, value in expected.items():
        assert torch.equal(got[key], value), f'{what}: {key}'


def test_factorised_head_state_dict_is_the_fcn_heads_and_stays_so():
    """The ResizeSumFCNHead that replaces the FCNHead carries its keys and values (no BN
    folding: nothing else changes them), and a forward changes none of them, with or without
    BN folding and channels_last."""
    model = hrnet_fcn()
    original = {k: v.clone() for k, v in model.decode_head.state_dict().items()}
    x = torch.randn(1, 3, 64, 128)
    unfolded = optimize_for_inference(model, channels_last=False, fold_bn=False,
                                      factorize_head=True)
    assert type(unfolded.decode_head) is ResizeSumFCNHead
    assert unfolded.decode_head.stream_channels == HRNET_W18S_WIDTHS
    _assert_same_state(unfolded.decode_head.state_dict(), original, 'unfolded vs FCNHead')
    _logits(unfolded, x)
    _assert_same_state(unfolded.decode_head.state_dict(), original, 'after a forward')
    fast = optimize_for_inference(model, factorize_head=True)
    before = {k: v.clone() for k, v in fast.state_dict().items()}
    _logits(fast, x)
    _assert_same_state(fast.state_dict(), before, 'BN folded + channels_last, after a forward')
    # BN folded: the head's BN keys are gone, its first conv gained a bias
    assert 'decode_head.convs.0.bn.weight' not in before
    assert 'decode_head.convs.0.conv.bias' in before
    _assert_same_state(model.decode_head.state_dict(), original, 'the input model')


def test_resize_sum_head_from_fcn_head_checks_its_inputs():
    head = hrnet_fcn().decode_head
    with pytest.raises(ValueError, match=r'stream_channels=\[18, 36, 72, 140\] sum to 266, '
                                         r'the head has in_channels=270'):
        ResizeSumFCNHead.from_fcn_head(head, [18, 36, 72, 140])
    with pytest.raises(ValueError, match='factorize_head needs an mmseg FCNHead with '
                                         "input_transform='resize_concat'"):
        ResizeSumFCNHead.from_fcn_head(bisenetv2_bga().decode_head, [128, 128])
    new = ResizeSumFCNHead.from_fcn_head(head, HRNET_W18S_WIDTHS)
    assert (new.in_index, new.align_corners, new.num_classes, new.channels) == (
        [0, 1, 2, 3], False, 19, 270)
    assert not new.training and new.loss_decode is head.loss_decode


def test_head_factorisation_needs_stream_channels_without_out_specs():
    """mmseg's own HRNet has no ``out_specs``: factorize_head=True asks for example_input,
    'auto' keeps the FCNHead, and with example_input the head is replaced."""
    model = _build(dict(type='HRNet', extra=arch_to_extra('w18_small')), HRNET_FCN_HEAD)
    assert not hasattr(model.backbone, 'out_specs')
    with pytest.raises(ValueError, match='factorize_head=True: the channels of the streams '
                                         'the FCNHead concatenates are unknown'):
        optimize_for_inference(model, factorize_head=True)
    assert type(optimize_for_inference(model).decode_head) is FCNHead
    x = torch.randn(1, 3, 64, 128)
    fast = optimize_for_inference(model, factorize_head=True, example_input=x)
    assert type(fast.decode_head) is ResizeSumFCNHead
    assert_close_relative(_logits(fast, x), _logits(model, x), DEEP, 'mmseg HRNet, factorised')


def test_head_factorisation_only_for_resize_concat_fcn():
    model = bisenetv2_bga()
    assert not ResizeSumFCNHead.can_replace(model.decode_head)
    fast = optimize_for_inference(model, factorize_head=True)  # other heads are left alone
    assert type(fast.decode_head) is type(model.decode_head)


def test_winograd_settings_take_the_defaults_and_refuse_unknown_keys():
    from mmseg_hrplus.models.layers.winograd import DEFAULT_MIN_CHANNELS
    defaults = dict(min_channels=DEFAULT_MIN_CHANNELS, tile=4, autotune=True)
    assert winograd_settings(None) is None and winograd_settings(False) is None
    assert winograd_settings(True) == defaults
    assert winograd_settings(dict(tile=2)) == dict(defaults, tile=2)
    with pytest.raises(ValueError, match=r"winograd has unknown keys \['min_channel'\]; "
                                         r'allowed keys: min_channels, tile, autotune'):
        winograd_settings(dict(min_channel=18))
    with pytest.raises(ValueError, match=r'tile=3 is not supported; allowed values: 2, 4'):
        winograd_settings(dict(tile=3))
    with pytest.raises(ValueError, match=r'winograd.min_channels must be an int >= 1, got 0'):
        optimize_for_inference(hrnet_fcn(), winograd=dict(min_channels=0))
    with pytest.raises(ValueError, match=r"winograd='yes' is not supported"):
        winograd_settings('yes')


def test_inplace_and_bad_argument():
    model = hrnet_fcn()
    with pytest.raises(ValueError, match=r"factorize_head='yes' is not supported; allowed "
                                         r"values: True, False, 'auto'"):
        optimize_for_inference(model, factorize_head='yes')
    same = optimize_for_inference(model, inplace=True)
    assert same is model
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())


def test_fold_bn_into_conv_math():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
    bn = nn.BatchNorm2d(4).eval()
    _randomize_bn(bn)
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        expected = bn(conv(x))
        fold_bn_into_conv(conv, bn)
        assert_close_relative(conv(x), expected, SHALLOW, 'conv with BN folded')
    with pytest.raises(ValueError, match='without running statistics'):
        fold_bn_into_conv(conv, nn.BatchNorm2d(4, track_running_stats=False))
    # a BN that does not follow a conv is not folded
    seq = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    assert fold_batchnorms(seq.eval()) == 1
    assert isinstance(seq[1], nn.BatchNorm2d) and isinstance(seq[3], nn.Identity)


@pytest.mark.parametrize('size', [(64, 128), (70, 130)])
def test_optimize_for_inference_with_winograd(size):
    model = hrnet_fcn()
    x = torch.randn(1, 3, *size)
    expected = _logits(model, x)
    # W18-small's widths are 18/36/72/144: a low threshold makes every stream Winograd.
    fast = optimize_for_inference(model, winograd=dict(min_channels=18))
    replaced = [m for m in fast.modules() if isinstance(m, WinogradConv2d)]
    # Every 3x3 stride-1 conv: 2 per BasicBlock of the stages' branches, the 2 Bottleneck
    # 3x3 convs of layer1 and the first transition's stride-1 conv (256 -> 18).
    blocks = sum(len(branch) for stage in ('stage2', 'stage3', 'stage4')
                 for module in getattr(model.backbone, stage)
                 for branch in module.branches)
    assert len(replaced) == 2 * blocks + 2 + 1
    assert_close_relative(_logits(fast, x), expected, WINOGRAD_DEEP, f'Winograd {size}')


def test_winograd_autotune_measures_at_optimize_time_with_an_example_input():
    """``example_input`` runs the autotune measurements inside optimize_for_inference: one
    decision per distinct conv shape (channels, size), each keeping the path it measured
    faster; the logits stay within the Winograd bound whichever paths were chosen. With
    ``winograd=dict(autotune=False)`` nothing is measured."""
    from mmseg_hrplus.models.layers import clear_winograd_decisions, winograd_decisions
    from mmseg_hrplus.models.layers.winograd import AUTOTUNE_MARGIN
    model = hrnet_fcn()
    x = torch.randn(1, 3, 64, 128)
    expected = _logits(model, x)
    clear_winograd_decisions()
    fixed = optimize_for_inference(model, winograd=dict(min_channels=18, autotune=False),
                                   example_input=(1, 3, 64, 128))
    assert winograd_decisions() == {}
    assert not any(m.autotune for m in fixed.modules() if isinstance(m, WinogradConv2d))
    fast = optimize_for_inference(model, winograd=dict(min_channels=18),
                                  example_input=(1, 3, 64, 128))
    decisions = winograd_decisions()
    layers = [m for m in fast.modules() if isinstance(m, WinogradConv2d)]
    assert all(m.autotune for m in layers)
    # W18-small at 64x128: the stem's stride-4 stream (64 channels from layer1 at 16x32), then
    # 18/36/72/144 channels at 16x32 / 8x16 / 4x8 / 2x4, and the 256 -> 18 transition conv
    shapes = {(d.in_channels, d.out_channels, d.height, d.width) for d in decisions}
    assert shapes == {(64, 64, 16, 32), (18, 18, 16, 32), (36, 36, 8, 16), (72, 72, 4, 8),
                      (144, 144, 2, 4), (256, 18, 16, 32)}
    for shape, d in decisions.items():
        assert shape.channels_last and shape.batch == 1
        faster = d.winograd_s <= AUTOTUNE_MARGIN * d.direct_s
        assert d.choice == ('winograd' if faster else 'direct')
    assert_close_relative(_logits(fast, x), expected, WINOGRAD_DEEP, 'autotuned Winograd')
    assert len(winograd_decisions()) == len(decisions)  # the same shapes: nothing re-measured
    clear_winograd_decisions()


def test_bn_folds_into_winograd_convs():
    """A model built with WinogradConv2d convs (conv_cfg) folds its BNs like nn.Conv2d."""
    model = _build(
        dict(type='mmseg_hrplus.HRNet', arch='w18_small',
             conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d', min_channels=18)),
        dict(type='mmseg_hrplus.ResizeSumFCNHead', in_channels=HRNET_W18S_WIDTHS,
             in_index=(0, 1, 2, 3), channels=sum(HRNET_W18S_WIDTHS),
             input_transform='resize_concat', kernel_size=1, num_convs=1, concat_input=False,
             dropout_ratio=-1, num_classes=19, align_corners=False))
    x = torch.randn(1, 3, 64, 128)
    expected = _logits(model, x)
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, _BatchNorm) for m in fast.modules())
    assert sum(isinstance(m, WinogradConv2d) and m.uses_winograd for m in fast.modules()) > 0
    # both run Winograd convs; folding changes their weights, so their (amplified) rounding
    assert_close_relative(_logits(fast, x), expected, WINOGRAD_DEEP, 'BN folded into Winograd')
