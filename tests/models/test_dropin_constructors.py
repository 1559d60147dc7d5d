"""Drop-in constructors: a positional call written for the mmseg/mmdet counterpart means the
same here, or fails; it never silently builds something else.

Counterparts: HRNet ~ mmseg/mmdet ``HRNet``, DilatedResNet ~ mmseg ``ResNet``, BiSeNetV2 ~
mmseg ``BiSeNetV2`` (branches only), HRNetV2pNeck ~ mmdet ``HRFPN``, ASPPHead ~ mmseg
``ASPPHead`` (positional ``dilations``), BGAHead ~ mmseg ``BaseDecodeHead``. With the same
weights ours run the counterparts' ops in the same order: outputs are bit for bit equal."""
import copy
import inspect

import pytest
import torch
from mmdet.models.backbones import HRNet as MMDetHRNet
from mmdet.models.necks import HRFPN
from mmseg.models.backbones import BiSeNetV2 as MMSegBiSeNetV2
from mmseg.models.backbones import HRNet as MMSegHRNet
from mmseg.models.backbones import ResNet as MMSegResNet
from mmseg.models.decode_heads import ASPPHead as MMSegASPPHead
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2
from mmseg_hrplus.models.backbones.bisenetv2 import BiSeNetV2
from mmseg_hrplus.models.backbones.dilated_resnet import DilatedResNet
from mmseg_hrplus.models.backbones.hrnet import HRNet
from mmseg_hrplus.models.decode_heads.aspp_head import ASPPHead
from mmseg_hrplus.models.decode_heads.bga_head import BGAHead
from mmseg_hrplus.models.necks.hrnetv2p import HRNetV2pNeck
from tests.helpers.tiny_models import tiny_hrnet_extra

pytestmark = pytest.mark.usefixtures('one_thread')

EXTRA = tiny_hrnet_extra()


def _positional_names(cls) -> list:
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.name != 'self']


def _shapes(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _randomize(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.2 + ('running_var' in name))
    return module


# ---------------------------------------------------------------- positional parameter names


@pytest.mark.parametrize('ours, theirs, skip', [
    # our first HRNet parameter is named arch: it takes mmseg's extra dict or a preset name
    (HRNet, MMSegHRNet, 1),
    (DilatedResNet, MMSegResNet, 0),
    (BiSeNetV2, MMSegBiSeNetV2, 0),
    (HRNetV2pNeck, HRFPN, 0),
    (ASPPHead, MMSegASPPHead, 0),
    (BGAHead, BaseDecodeHead, 0),
], ids=lambda v: getattr(v, '__name__', str(v)))
def test_positional_parameters_are_a_prefix_of_the_counterpart(ours, theirs, skip):
    """Every parameter we take positionally sits where the counterpart has one of the same
    name (or, for HRNet's first, meaning); the counterpart's further ones are keyword-only
    here, so passing them positionally raises a TypeError."""
    mine, reference = _positional_names(ours), _positional_names(theirs)
    if theirs is MMSegBiSeNetV2:  # mmseg's semantic_expansion_ratio is our expand_ratio
        reference = ['expand_ratio' if n == 'semantic_expansion_ratio' else n
                     for n in reference]
    assert mine[skip:] == reference[skip:len(mine)]


# ---------------------------------------------------------------- HRNet


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 4])
def test_hrnet_extra_positional_with_frozen_stages_as_mmseg(frozen_stages):
    ours = HRNet(EXTRA, frozen_stages=frozen_stages)
    ref = MMSegHRNet(copy.deepcopy(EXTRA), frozen_stages=frozen_stages)
    assert ours.arch is None and ours.stage_specs == HRNet(extra=EXTRA).stage_specs
    assert _shapes(ours) == _shapes(ref)
    assert ({k for k, p in ours.named_parameters() if not p.requires_grad}
            == {k for k, p in ref.named_parameters() if not p.requires_grad})
    ours.train()
    ref.train()
    modes = {n: m.training for n, m in ref.named_modules() if isinstance(m, _BatchNorm)}
    assert modes == {n: m.training for n, m in ours.named_modules() if isinstance(m, _BatchNorm)}

    # mmseg's own rule, checked on our model: the stem, then layer1/stage2..k and the
    # transition leaving each, have no trainable parameter and their BN stays in eval mode.
    frozen = []
    if frozen_stages >= 0:
        frozen += [ours.conv1, ours.norm1, ours.conv2, ours.norm2]
    for i in range(1, frozen_stages + 1):
        frozen.append(ours.layer1 if i == 1 else getattr(ours, f'stage{i}'))
        if i < 4:
            frozen.append(getattr(ours, f'transition{i}'))
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules() if isinstance(m, _BatchNorm))
    if frozen_stages < 4:
        assert all(p.requires_grad for p in ours.stage4.parameters())


def test_hrnet_full_mmseg_positional_call():
    norm_cfg = dict(type='BN', requires_grad=True)
    # extra, in_channels, conv_cfg, norm_cfg, norm_eval, with_cp, frozen_stages,
    # zero_init_residual, multiscale_output
    args = (1, None, norm_cfg, True, False, 1, True, False)
    ours = HRNet(EXTRA, *args)
    ref = MMSegHRNet(copy.deepcopy(EXTRA), *copy.deepcopy(args))
    assert (ours.norm_eval, ours.with_cp, ours.frozen_stages, ours.zero_init_residual,
            ours.multiscale_output) == (True, False, 1, True, False)
    assert _shapes(ours) == _shapes(ref)
    assert ours.conv1.weight.shape[1] == 1
    # zero_init_residual reached its place: every block's last BN starts at 0 (mmseg's own
    # flag never takes effect, see tests/models/backbones/test_hrnet.py).
    ours.init_weights()
    blocks = list(ours.residual_blocks())
    assert blocks and all(
        torch.count_nonzero(b.norm3.weight if hasattr(b, 'norm3') else b.norm2.weight) == 0
        for b in blocks)

    _randomize(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.train()
    ref.train()  # norm_eval=True: BN stays in eval mode, so train mode is deterministic
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        got, expected = ours(x), ref(x)
    assert len(got) == len(expected) == 1  # multiscale_output=False
    assert torch.equal(got[0], expected[0])


def test_hrnet_mmdet_positional_prefix_and_its_seventh_argument():
    norm_cfg = dict(type='BN', requires_grad=True)
    ours = HRNet(EXTRA, 3, None, norm_cfg, False, False, upsample_mode='nearest')
    ref = MMDetHRNet(copy.deepcopy(EXTRA), 3, None, norm_cfg, False, False)
    assert _shapes(ours) == _shapes(ref)
    # mmdet's 7th positional argument is zero_init_residual, ours (as mmseg's) frozen_stages:
    # a bool there is refused rather than read as frozen_stages=1.
    with pytest.raises(ValueError, match=r'frozen_stages=True must be an int.*zero_init_residual'):
        HRNet(EXTRA, 3, None, norm_cfg, False, False, True)


def test_hrnet_arch_and_extra_keywords_still_work():
    assert HRNet('w18_small').arch == 'w18_small'
    assert HRNet(arch='w18_small').arch == 'w18_small'
    by_keyword, by_arch_keyword = HRNet(extra=EXTRA), HRNet(arch=EXTRA)
    assert _shapes(by_keyword) == _shapes(by_arch_keyword) == _shapes(HRNet(EXTRA))


@pytest.mark.parametrize('args, kwargs, match', [
    ((EXTRA, ), dict(extra=EXTRA), r'arch=an extra dict and extra are both given'),
    (('w64', ), dict(), r"arch='w64'.*allowed values: 'w18_small', 'w18', 'w32', 'w40', 'w48'"),
    ((18, ), dict(), r"arch=18 is not supported; allowed values: a preset name .*'w48'.*extra"),
])
def test_hrnet_first_argument_errors_name_it(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HRNet(*args, **kwargs)


# ---------------------------------------------------------------- DilatedResNet


def test_dilated_resnet_positional_as_mmseg_resnet():
    # depth, in_channels, stem_channels, base_channels; output stride 32 = mmseg's defaults
    ours = DilatedResNet(50, 2, 16, 8, output_stride=32).eval()
    ref = MMSegResNet(50, 2, 16, 8)
    ref.eval()  # mmseg's ResNet.train returns None
    assert _shapes(ours) == _shapes(ref)
    _randomize(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 2, 32, 32)
    with torch.no_grad():
        for got, expected in zip(ours(x), ref(x), strict=True):
            assert torch.equal(got, expected)


def test_dilated_resnet_refuses_mmseg_positional_arguments_it_does_not_have():
    with pytest.raises(TypeError):
        DilatedResNet(50, 3, 64, 64, 4)  # mmseg's num_stages


# ---------------------------------------------------------------- BiSeNetV2


def test_bisenetv2_positional_as_mmseg():
    # in_channels, detail_channels, semantic_channels, semantic_expansion_ratio
    args = (1, (8, 8, 16), (8, 8, 16, 16), 2)
    ours = BiSeNetV2(*args).eval()
    assert (ours.detail_channels, ours.semantic_channels, ours.expand_ratio) == args[1:]
    ref = _randomize(MMSegBiSeNetV2(*args, bga_channels=16)).eval()
    converted = convert_mmseg_bisenetv2({f'backbone.{k}': v for k, v in ref.state_dict().items()})
    ours.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()
                          if k.startswith('backbone.')}, strict=True)
    x = torch.randn(1, 1, 32, 64)
    with torch.no_grad():
        detail, semantic, *taps = ours(x)
        ref_semantic = ref.semantic(x)
        assert torch.equal(detail, ref.detail(x))
    assert torch.equal(semantic, ref_semantic[-1])
    for got, expected in zip(taps, ref_semantic[:-1], strict=True):
        assert torch.equal(got, expected)


def test_bisenetv2_arch_is_keyword_only_and_a_positional_name_is_explained():
    assert BiSeNetV2(arch='large').arch == 'large'
    with pytest.raises(ValueError, match=r"in_channels must be an int >= 1.*arch='large'"):
        BiSeNetV2('large')
    with pytest.raises(TypeError):
        BiSeNetV2(3, (64, 64, 128), (16, 32, 64, 128), 6, 128)  # mmseg's bga_channels


# ---------------------------------------------------------------- HRNetV2pNeck


def test_hrnetv2p_neck_positional_as_mmdet_hrfpn():
    # in_channels, out_channels, num_outs, pooling_type, conv_cfg, norm_cfg, with_cp, stride
    args = ([4, 8], 6, 3, 'MAX', None, None, False, 2)
    ours, ref = HRNetV2pNeck(*args).eval(), HRFPN(*copy.deepcopy(args)).eval()
    assert _shapes(ours) == _shapes(ref)
    _randomize(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats = [torch.randn(1, 4, 16, 16), torch.randn(1, 8, 8, 8)]
    with torch.no_grad():
        for got, expected in zip(ours(feats), ref(feats), strict=True):
            assert torch.equal(got, expected)


# ---------------------------------------------------------------- heads


def test_aspp_head_positional_dilations_as_mmseg():
    ours = ASPPHead((2, 4), in_channels=8, num_classes=3)
    ref = MMSegASPPHead((2, 4), in_channels=8, channels=4, num_classes=3)
    assert tuple(ours.dilations) == tuple(ref.dilations) == (2, 4)
    assert [b.dilation for b in ours.branches] == [(2, 2), (4, 4)]


@pytest.mark.parametrize('args, kwargs, match', [
    ((2048, ), dict(num_classes=3), r'dilations=2048 .*in_channels is keyword-only'),
    ((), dict(in_channels=8, channels=4, num_classes=3), r'channels=4 cannot be used'),
])
def test_aspp_head_explains_calls_in_the_old_or_deeplabv3_form(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ASPPHead(*args, **kwargs)


def test_bga_head_positional_as_base_decode_head():
    head = BGAHead((16, 32), 8, num_classes=3, bga_channels=16)
    assert (head.in_channels, head.channels) == ([16, 32], 8)
