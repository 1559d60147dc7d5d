"""mmseg_hrplus.HRNet: parity with mmseg/mmdet HRNet, fusion modes, options, presets.

Parity is bit for bit: with the same weights our HRNet runs mmseg's (mmdet's) ops in the same
order, so outputs, gradients and BN statistics are equal on any CPU. Where the op order differs
(the fuse orders) the bound is relative to the largest value (tests/helpers/float_bounds.py).
"""
import copy
import re

import pytest
import torch
from mmdet.models.backbones import HRNet as MMDetHRNet
from mmengine.registry import init_default_scope
from mmseg.models.backbones import HRNet as MMSegHRNet
from mmseg.models.decode_heads import FCNHead
from torch.autograd import DeviceType
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg_hrplus.models.backbones.hrnet import ARCH_PRESETS, HRNet, arch_to_extra
from mmseg_hrplus.models.utils.feature_spec import check_in_channels
from mmseg_hrplus.models.utils.memory_format import is_channels_last
from tests.helpers.float_bounds import DEEP, SHALLOW, WINOGRAD_DEEP, assert_close_relative
from tests.helpers.tiny_models import randomize_conv_bn_, tiny_hrnet_extra

# Narrow and shallow, but with everything the presets have: a stage-1 Bottleneck projection,
# several modules per stage, multi-hop downsampling paths (stage 4).
TINY = tiny_hrnet_extra(num_modules=(1, 2, 2))


pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]


def _randomize(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Random conv weights and non-trivial BN affine/statistics, so eval mode tests something."""
    return randomize_conv_bn_(model, seed)


def _max_diff(xs, ys) -> float:
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        assert x.shape == y.shape
    return max((x - y).abs().max().item() for x, y in zip(xs, ys))


def _assert_equal(xs, ys, what: str) -> None:
    """Bit for bit equal tensors (same ops in the same order); the message gives the largest
    difference."""
    diff = _max_diff(xs, ys)
    assert all(torch.equal(x, y) for x, y in zip(xs, ys)), f'{what}: max abs diff {diff:.3g}'


def _bn_stats(model):
    return {k: v for k, v in model.state_dict().items() if 'running' in k}


def _check_parity(ref, ours, train: bool, size=(64, 64), batch: int = 2) -> None:
    """Copy ref's weights into ours, run both in the same mode and assert equal outputs, input
    gradients and BN running statistics after the step."""
    _randomize(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.train(train)
    ours.train(train)
    x = torch.randn(batch, 3, *size)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, out_ours = ref(xr), ours(xo)
    _assert_equal(out_ref, out_ours, 'outputs')
    weights = [torch.randn_like(o) for o in out_ref]
    sum((o * w).sum() for o, w in zip(out_ref, weights)).backward()
    sum((o * w).sum() for o, w in zip(out_ours, weights)).backward()
    _assert_equal([xr.grad], [xo.grad], 'input gradient')
    stats_ref, stats_ours = _bn_stats(ref), _bn_stats(ours)
    assert stats_ref.keys() == stats_ours.keys()
    _assert_equal(list(stats_ref.values()), list(stats_ours.values()), 'BN running statistics')


# ---------------------------------------------------------------- parity and checkpoint keys


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_parity_with_mmseg_bilinear(train):
    _check_parity(MMSegHRNet(copy.deepcopy(TINY)), HRNet(extra=TINY), train)


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_parity_with_mmdet_nearest(train):
    ref = MMDetHRNet(copy.deepcopy(TINY), norm_eval=False)
    _check_parity(ref, HRNet(extra=TINY, upsample_mode='nearest'), train)


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_parity_w18_small_preset(train):
    ref = MMSegHRNet(arch_to_extra('w18_small'))
    _check_parity(ref, HRNet(arch='w18_small'), train, size=(64, 96), batch=2)


def test_parity_single_output():
    ref = MMSegHRNet(copy.deepcopy(TINY), multiscale_output=False)
    ours = HRNet(extra=TINY, multiscale_output=False)
    _check_parity(ref, ours, train=False)
    assert len(ours.out_specs) == 1


@pytest.mark.parametrize('arch', ['w18_small', 'w32'])
def test_state_dict_keys_equal_mmseg_and_mmdet(arch):
    ours = HRNet(arch=arch).state_dict()
    for ref_cls in (MMSegHRNet, MMDetHRNet):
        ref = ref_cls(arch_to_extra(arch)).state_dict()
        assert list(ours) == list(ref)
        assert all(ours[k].shape == ref[k].shape for k in ref)
    assert 'stage4.0.fuse_layers.3.0.2.1.running_var' in ours  # a three-hop downsample path


def test_multiple_size_mismatch_mmdet_fails_ours_resizes():
    """mmdet's nearest path has no resize: 97x131 (streams 25x33, 13x17, ...) breaks it."""
    x = torch.randn(1, 3, 97, 131)
    ref = MMDetHRNet(copy.deepcopy(TINY))
    ref.eval()  # mmdet's train() returns None
    with pytest.raises(RuntimeError):
        ref(x)
    outs = HRNet(extra=TINY, upsample_mode='nearest').eval()(x)
    assert [tuple(o.shape[2:]) for o in outs] == [(25, 33), (13, 17), (7, 9), (4, 5)]


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_parity_with_mmseg_on_odd_sizes(train):
    """97x131: streams 25x33, 13x17, 7x9, 4x5 are not 2x each other, so mmseg upsamples and then
    resizes again; we reproduce it (a single resize differed by ~10% of the output range)."""
    _check_parity(MMSegHRNet(copy.deepcopy(TINY)), HRNet(extra=TINY), train, size=(97, 131))


def test_parity_with_mmseg_509x1021():
    ref = _randomize(MMSegHRNet(copy.deepcopy(TINY)))
    ref.eval()  # mmseg's train() returns None
    ours = HRNet(extra=TINY).eval()
    ours.load_state_dict(ref.state_dict())
    with torch.no_grad():
        x = torch.randn(1, 3, 509, 1021)
        _assert_equal(ref(x), ours(x), 'outputs at 509x1021')


# ---------------------------------------------------------------- fusion modes


def _paper_new_stream_keys(model: HRNet):
    """Keys of the extra fusion rows that make the paper's new streams."""
    pattern = re.compile(rf'stage2\.{model.stage2.__len__() - 1}\.fuse_layers\.2\.|'
                         rf'stage3\.{model.stage3.__len__() - 1}\.fuse_layers\.3\.')
    # num_batches_tracked is never reported missing (BN fills it in when absent).
    return {k for k in model.state_dict()
            if pattern.match(k) and not k.endswith('num_batches_tracked')}


def test_official_checkpoint_into_paper_mode_misses_only_new_stream():
    official = _randomize(HRNet(extra=TINY))
    paper = HRNet(extra=TINY, fusion_mode='paper')
    result = paper.load_state_dict(official.state_dict(), strict=False)
    new_keys = _paper_new_stream_keys(paper)
    assert new_keys and set(result.missing_keys) == new_keys
    # The official weights without a place are exactly its new-stream transitions; they are
    # reported (strict loading names them), not silently skipped.
    unexpected = set(official.state_dict()) - set(paper.state_dict())
    assert unexpected and all(re.match(r'transition(2\.2|3\.3)\.', k) for k in unexpected)
    with pytest.raises(RuntimeError, match=r'Unexpected key.*transition2\.2\.0\.0\.weight'):
        paper.load_state_dict(official.state_dict(), strict=True)


@pytest.mark.parametrize('mode', ['bilinear', 'nearest'])
def test_fuse_orders_agree_in_eval(mode):
    conv_first = _randomize(HRNet(extra=TINY, upsample_mode=mode)).eval()
    up_first = HRNet(extra=TINY, upsample_mode=mode, fusion_mode='paper',
                     new_branch='from_lowest').eval()
    assert up_first.fuse_order == 'upsample_first'
    up_first.load_state_dict(conv_first.state_dict(), strict=True)
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64)
        # Only the fusions differ: their 1x1 conv (+ BN) and the resize in the other order
        # (sums of <= 32 channels, in 5 modules); the rest runs the same ops.
        assert_close_relative(up_first(x), conv_first(x), SHALLOW,
                              f'{mode}: upsample_first vs conv_first in eval')


def test_fuse_orders_in_train_mode():
    """Bilinear upsampling smooths, so BN after it sees another variance than BN before it;
    nearest x2 replication keeps mean and variance, so there the outputs agree in training too
    (running_var still differs slightly: its unbiased n/(n-1) factor counts 4x more pixels)."""
    x = torch.randn(2, 3, 64, 64)
    bn = 'stage2.0.fuse_layers.0.1.1.'  # the BN of the 1/8 -> 1/4 path
    diffs = {}
    for mode in ('bilinear', 'nearest'):
        conv_first = _randomize(HRNet(extra=TINY, upsample_mode=mode)).train()
        up_first = HRNet(extra=TINY, upsample_mode=mode, fuse_order='upsample_first').train()
        up_first.load_state_dict(conv_first.state_dict(), strict=True)
        out_first, out_up = conv_first(x), up_first(x)
        out_diff = _max_diff(out_first, out_up)
        a, b = conv_first.state_dict(), up_first.state_dict()
        if mode == 'nearest':
            # the same function, only the fusions in another op order (as in eval); the BN
            # mean sums 4x more (equal) values
            assert_close_relative(out_up, out_first, SHALLOW, 'nearest: outputs in train mode')
            assert_close_relative(b[bn + 'running_mean'], a[bn + 'running_mean'], SHALLOW,
                                  'nearest: running_mean')
        diffs[mode] = tuple((a[bn + k] - b[bn + k]).abs().max().item()
                            for k in ('running_mean', 'running_var'))
        diffs[mode] = (out_diff, ) + diffs[mode]
        # BN statistics before any upsampled path (the stem) do not depend on the order.
        assert torch.equal(conv_first.bn1.running_var, up_first.bn1.running_var)
    print(f'train mode conv_first vs upsample_first, max abs diff of (outputs, running_mean, '
          f'running_var): {diffs}')
    assert diffs['bilinear'][0] > 1e-2 and diffs['bilinear'][2] > 1e-2
    assert 0 < diffs['nearest'][2] < 1e-2 * a[bn + 'running_var'].max()


def test_new_branch_rule_changes_params_and_outputs():
    lowest = _randomize(HRNet(extra=TINY))
    from_all = HRNet(extra=TINY, new_branch='from_all')
    assert from_all.fuse_order == 'conv_first'
    n_lowest = sum(p.numel() for p in lowest.parameters())
    n_all = sum(p.numel() for p in from_all.parameters())
    # Stage 3's new 16-ch stream: from 4 ch (2 hops) + 8 ch (1 hop) instead of one 8 -> 16 hop;
    # stage 4's 32-ch stream: from 4, 8 (3 and 2 hops) and 16 ch, instead of one 16 -> 32 hop.
    extra_params = sum(p.numel() for k, p in from_all.named_parameters()
                       if k in _paper_new_stream_keys(from_all))
    official_new = sum(p.numel() for k, p in lowest.named_parameters()
                       if k.startswith(('transition2.2', 'transition3.3')))
    assert n_all - n_lowest == extra_params - official_new > 0
    from_all.load_state_dict(lowest.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        diff = _max_diff(lowest.eval()(x), from_all.eval()(x))
    assert diff > 1e-3
    print(f'params from_lowest {n_lowest}, from_all {n_all}; output difference {diff:.3g}')


def _conv_bn_by_hand(x, conv, bn):
    """An eval-mode conv + BN written out from the layers' tensors (not their forward)."""
    y = torch.nn.functional.conv2d(x, conv.weight, None, conv.stride, conv.padding)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (y - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]


@pytest.mark.parametrize('stage', [2, 3])
def test_paper_new_stream_is_the_relu_of_summed_strided_paths_from_every_stream(stage):
    """The paper's new branch, computed by hand from the module's own weights: for each existing
    stream j, (new - j) stride-2 3x3 conv + BN hops (ReLU between hops, none after the last),
    summed over ALL streams, then one ReLU after the sum."""
    net = _randomize(HRNet(extra=TINY, fusion_mode='paper')).eval()
    last = getattr(net, f'stage{stage}')[-1]
    seen = {}
    last.fuse_layers.register_forward_hook(
        lambda module, args, out: seen.update(xs=[x.clone() for x in args[0]], out=out))
    with torch.no_grad():
        net(torch.randn(1, 3, 64, 96))
        xs, new = seen['xs'], len(seen['xs'])
        total = 0
        for j, x in enumerate(xs):
            hops = last.fuse_layers[new][j]
            assert len(hops) == new - j  # one stride-2 hop per halving
            for k, hop in enumerate(hops):
                x = _conv_bn_by_hand(x, hop[0], hop[1])
                if k < len(hops) - 1:
                    x = torch.relu(x)
            total = total + x
        by_hand = torch.relu(total)
    assert len(seen['out']) == new + 1
    assert by_hand.shape == seen['out'][new].shape
    assert_close_relative(seen['out'][new], by_hand, SHALLOW, f'stage {stage} new stream')
    # and it is not the official rule (one hop from the lowest stream alone)
    assert (seen['out'][new] - torch.relu(_conv_bn_by_hand(
        xs[-1], last.fuse_layers[new][new - 1][0][0], last.fuse_layers[new][new - 1][0][1]))
    ).abs().max() > 1e-3


@pytest.mark.parametrize('fusion_mode', ['official', 'paper'])
@pytest.mark.parametrize('upsample_mode', ['bilinear', 'nearest'])
def test_any_input_size(fusion_mode, upsample_mode):
    net = HRNet(extra=TINY, fusion_mode=fusion_mode, upsample_mode=upsample_mode).eval()
    with torch.no_grad():
        for size, expected in [((509, 1021), [(128, 256), (64, 128), (32, 64), (16, 32)]),
                               ((97, 131), [(25, 33), (13, 17), (7, 9), (4, 5)])]:
            outs = net(torch.randn(1, 3, *size))
            assert [tuple(o.shape[2:]) for o in outs] == expected
            assert [o.shape[1] for o in outs] == [s.channels for s in net.out_specs]
            assert all(torch.isfinite(o).all() for o in outs)


def test_out_specs_match_outputs():
    net = HRNet(arch='w18_small').eval()
    assert [tuple(s) for s in net.out_specs] == [(18, 4), (36, 8), (72, 16), (144, 32)]
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 64, 128))
    for o, spec in zip(outs, net.out_specs):
        assert o.shape[1] == spec.channels and o.shape[2] == 64 // spec.stride
    paper = HRNet(extra=TINY, fusion_mode='paper', multiscale_output=False)
    assert [tuple(s) for s in paper.out_specs] == [(4, 4)]


# ---------------------------------------------------------------- training options


# What each frozen_stages level adds (mmseg's rule: a stage with the transition leaving it).
FREEZE_GROUPS = [('conv1', 'bn1', 'conv2', 'bn2'), ('layer1', 'transition1'),
                 ('stage2', 'transition2'), ('stage3', 'transition3'), ('stage4', )]


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3, 4])
def test_frozen_stages_as_mmseg(frozen_stages):
    ours = HRNet(extra=TINY, frozen_stages=frozen_stages)
    ref = MMSegHRNet(copy.deepcopy(TINY), frozen_stages=frozen_stages)
    frozen = {k for k, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {k for k, p in ref.named_parameters() if not p.requires_grad}
    tops = {t for group in FREEZE_GROUPS[:frozen_stages + 1] for t in group}
    assert frozen == {k for k, _ in ours.named_parameters() if k.split('.')[0] in tops}
    ours.train()
    for name, m in ours.named_modules():
        if isinstance(m, _BatchNorm):
            assert m.training == (name.split('.')[0] not in tops), name


def test_frozen_stages_paper_new_stream_frozen_with_its_stage():
    net = HRNet(extra=TINY, fusion_mode='paper', frozen_stages=2)
    new = _paper_new_stream_keys(net)
    params = dict(net.named_parameters())
    assert all(not params[k].requires_grad for k in new if k in params and k.startswith('stage2'))
    assert all(params[k].requires_grad for k in new if k in params and k.startswith('stage3'))


def test_norm_eval_keeps_running_stats():
    net = HRNet(extra=TINY, norm_eval=True)
    net.train()
    assert all(not m.training for m in net.modules() if isinstance(m, _BatchNorm))
    before = copy.deepcopy(_bn_stats(net))
    net(torch.randn(2, 3, 32, 32))
    after = _bn_stats(net)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_zero_init_residual_really_zeroes():
    net = HRNet(extra=TINY, zero_init_residual=True)
    net.init_weights()
    lasts = {k: v for k, v in net.state_dict().items()
             if re.search(r'(layer1\.\d+\.bn3|branches\.\d+\.\d+\.bn2)\.weight$', k)}
    # 1 Bottleneck + (2 + 2*3 + 2*4) BasicBlocks
    assert len(lasts) == 1 + 2 + 6 + 8
    assert all(torch.count_nonzero(v) == 0 for v in lasts.values())
    assert all(torch.count_nonzero(v) > 0 for k, v in net.state_dict().items()
               if k.endswith('bn1.weight'))
    # mmseg's flag is dead code (it checks `not hasattr(self, 'init_cfg')`, always False).
    ref = MMSegHRNet(copy.deepcopy(TINY), zero_init_residual=True)
    ref.init_weights()
    assert torch.count_nonzero(ref.layer1[0].bn3.weight) > 0


def test_zero_init_residual_leaves_pretrained_weights(tmp_path):
    src = _randomize(HRNet(extra=TINY))
    path = tmp_path / 'backbone.pth'
    torch.save(src.state_dict(), path)
    net = HRNet(extra=TINY, zero_init_residual=True,
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    net.init_weights()
    assert torch.equal(net.layer1[0].bn3.weight, src.layer1[0].bn3.weight)


def _train_step_peak_bytes(net: HRNet, x: torch.Tensor) -> int:
    """Peak of (allocated - freed) CPU tensor bytes over one forward + backward, from torch's
    profiler memory events."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        sum(o.float().mean() for o in net(x)).backward()
    # start_ns() is newer than torch 2.1, which has start_us() only.
    events = sorted((e.start_ns() if hasattr(e, 'start_ns') else e.start_us() * 1000,
                     e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]' and e.device_type() == DeviceType.CPU)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def test_with_cp_lowers_peak_memory_same_step():
    ref = HRNet(arch='w18_small').train()
    cp = HRNet(arch='w18_small', with_cp=True).train()
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 128, 256)
    peak_ref = _train_step_peak_bytes(ref, x)
    peak_cp = _train_step_peak_bytes(cp, x)
    print(f'w18_small train step 2x3x128x256: peak {peak_ref / 2**20:.1f} MiB, with_cp '
          f'{peak_cp / 2**20:.1f} MiB')
    assert peak_cp < 0.8 * peak_ref
    # Same gradients and, unlike a naive checkpoint, the same BN running statistics: the
    # recomputation runs the same ops on the same data, so bit for bit.
    for (k, a), b in zip(ref.named_parameters(), cp.parameters()):
        _assert_equal([a.grad], [b.grad], f'{k} gradient')
    _assert_equal(list(_bn_stats(ref).values()), list(_bn_stats(cp).values()),
                  'BN running statistics')


# ---------------------------------------------------------------- channels_last


@pytest.mark.parametrize('conv_cfg, bound', [
    (None, DEEP),
    (dict(type='mmseg_hrplus.WinogradConv2d', min_channels=8, autotune=False), WINOGRAD_DEEP)])
def test_channels_last_same_function_weights_and_checkpoints(conv_cfg, bound, tmp_path):
    """NHWC weights and activations compute what the NCHW model computes, forward and backward,
    in train mode; the layout survives init_weights and checkpoint loading, and the checkpoint
    loads into an NCHW model unchanged."""
    plain = _randomize(HRNet(extra=TINY, conv_cfg=conv_cfg))
    nhwc = HRNet(extra=TINY, conv_cfg=conv_cfg, channels_last=True)
    nhwc.init_weights()
    nhwc.load_state_dict(plain.state_dict(), strict=True)
    spatial = [name for name, p in nhwc.named_parameters() if p.dim() == 4 and p.shape[2] > 1]
    assert spatial and all(is_channels_last(nhwc.get_parameter(name)) for name in spatial)

    x = torch.randn(2, 3, 64, 72)
    outputs, grads = [], []
    for model in (plain, nhwc):
        model.train()
        inputs = x.clone().requires_grad_()
        ys = model(inputs)
        sum((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum() for y in ys).backward()
        outputs.append(ys)
        grads.append([inputs.grad] + [model.get_parameter(name).grad for name in spatial])
    assert all(is_channels_last(y) for y in outputs[1])
    assert_close_relative(outputs[1], outputs[0], bound, 'channels_last outputs')
    assert_close_relative(grads[1], grads[0], bound, 'channels_last input and weight gradients')
    # gradients take the weights' layout, so optimizer state (momentum) follows it
    assert all(is_channels_last(g) for g in grads[1][1:])
    assert_close_relative(list(_bn_stats(nhwc).values()), list(_bn_stats(plain).values()),
                          bound, 'BN running statistics after the step')

    torch.save(nhwc.state_dict(), tmp_path / 'nhwc.pth')
    back = HRNet(extra=TINY, conv_cfg=conv_cfg)
    back.load_state_dict(torch.load(tmp_path / 'nhwc.pth'), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(),
                                                  nhwc.state_dict().values()))


# ---------------------------------------------------------------- arguments and presets


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='w64'), r"arch='w64'.*'w18_small', 'w18', 'w32', 'w40', 'w48'"),
    (dict(fusion_mode='mixed'), r"fusion_mode='mixed'.*'official', 'paper'"),
    (dict(upsample_mode='bicubic'), r"upsample_mode='bicubic'.*'bilinear', 'nearest'"),
    (dict(fuse_order='sideways'), r"fuse_order='sideways'.*'conv_first', 'upsample_first'"),
    (dict(new_branch='random'), r"new_branch='random'.*'from_lowest', 'from_all'"),
    (dict(frozen_stages=5), r'frozen_stages=5.*-1, 0, 1, 2, 3, 4'),
    (dict(channels_last='yes'), r"channels_last must be True or False, got 'yes'"),
    (dict(upsample_mode='nearest', align_corners=True), r'align_corners=True'),
    (dict(arch='w18', extra=TINY), r'arch=.*extra'),
    (dict(extra={k: v for k, v in TINY.items() if k != 'stage4'}), r'stage4'),
    (dict(extra=dict(TINY, stage3=dict(TINY['stage3'], num_blocks=(1, 1)))),
     r'num_blocks.*num_branches=3'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HRNet(**kwargs)


@pytest.mark.parametrize('arch', list(ARCH_PRESETS))
def test_preset_parameter_counts_equal_mmseg(arch):
    ours = sum(p.numel() for p in HRNet(arch=arch).parameters())
    ref = sum(p.numel() for p in MMSegHRNet(arch_to_extra(arch)).parameters())
    print(f'{arch}: {ours / 1e6:.4f}M backbone parameters (mmseg {ref / 1e6:.4f}M)')
    assert ours == ref


def test_registered_and_built_from_mmseg_scope():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    net = MODELS.build(dict(type='mmseg_hrplus.HRNet', arch='w18_small', fusion_mode='paper'))
    assert isinstance(net, HRNet) and net.new_branch == 'from_all'


# ---------------------------------------------------------------- representations


def test_hrnet_v1_and_v2_heads():
    """V1 = FCNHead on stream 0; V2 = FCNHead over all streams resized to 1/4 and concatenated."""
    net = HRNet(extra=TINY).eval()
    specs = net.out_specs
    v1 = FCNHead(in_channels=specs[0].channels, in_index=0, channels=specs[0].channels,
                 num_convs=1, kernel_size=1, concat_input=False, num_classes=5)
    chans = [s.channels for s in specs]
    v2 = FCNHead(in_channels=chans, in_index=(0, 1, 2, 3), input_transform='resize_concat',
                 channels=sum(chans), num_convs=1, kernel_size=1, concat_input=False,
                 num_classes=5)
    check_in_channels('V1', v1.in_channels, v1.in_index, specs)
    check_in_channels('V2', chans, list(v2.in_index), specs)
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 64, 96))
        assert v1.eval()(feats).shape == (1, 5, 16, 24)
        assert v2.eval()(feats).shape == (1, 5, 16, 24)
        assert v2._transform_inputs(feats).shape == (1, sum(chans), 16, 24)
