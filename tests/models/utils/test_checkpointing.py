"""with_cp has one meaning: HRNet and DilatedResNet checkpoint each residual block through
mmseg_hrplus.models.utils.checkpointing, and a training step leaves the same BN running
statistics, outputs and gradients with and without it (bit for bit: the recomputation runs the
same ops on the same data). mmseg's own block checkpointing, for contrast, updates the
statistics twice."""
import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg_hrplus.models.backbones import DilatedResNet, HRNet
from mmseg_hrplus.models.utils.checkpointing import checkpoint_module, restore_norm_stats
from tests.helpers.tiny_models import randomize_conv_bn_, tiny_hrnet_extra

pytestmark = pytest.mark.usefixtures('one_thread')


def _bn_buffers(model: nn.Module) -> dict:
    return {f'{name}.{key}': buf.clone() for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) for key, buf in m.named_buffers()}


def _step(model: nn.Module, x: torch.Tensor):
    """One training forward + backward; the outputs, the gradients and the BN buffers."""
    model.zero_grad()
    outs = model(x)
    sum(out.square().mean() for out in outs).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outs], grads, _bn_buffers(model)


def _assert_same_step(plain, cp, what):
    (out_a, grad_a, bn_a), (out_b, grad_b, bn_b) = plain, cp
    assert all(torch.equal(a, b) for a, b in zip(out_a, out_b)), f'{what}: outputs'
    assert grad_a.keys() == grad_b.keys() and all(
        torch.equal(grad_a[k], grad_b[k]) for k in grad_a), f'{what}: gradients'
    assert bn_a.keys() == bn_b.keys() and bn_a
    for key in bn_a:
        assert torch.equal(bn_a[key], bn_b[key]), f'{what}: BN buffer {key}'


def _forward_counts(blocks) -> list:
    # a pre-hook: the recomputation stops early, once it has rebuilt what backward needs
    counts = [0]
    for block in blocks:
        block.register_forward_pre_hook(lambda *_: counts.__setitem__(0, counts[0] + 1))
    return counts


def _hrnet(with_cp: bool) -> HRNet:
    return HRNet(extra=tiny_hrnet_extra(), with_cp=with_cp)


def _dilated_resnet(with_cp: bool) -> DilatedResNet:
    return DilatedResNet(depth=50, base_channels=8, stem_channels=8, out_indices=(1, 3),
                         with_cp=with_cp)


@pytest.mark.parametrize('build, blocks', [
    (_hrnet, lambda net: list(net.layer1) + [b for m in net.stage2 for br in m.branches
                                             for b in br]),
    (_dilated_resnet, lambda net: list(net.layer1) + list(net.layer4)),
], ids=['HRNet', 'DilatedResNet'])
def test_with_cp_keeps_bn_statistics_outputs_and_gradients(build, blocks):
    torch.manual_seed(0)
    plain = build(False).train()
    randomize_conv_bn_(plain)
    cp = build(True).train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    plain_counts, cp_counts = _forward_counts(blocks(plain)), _forward_counts(blocks(cp))
    for step in range(2):  # the second step starts from statistics the first one left
        _assert_same_step(_step(plain, x), _step(cp, x), f'step {step}')
    # checkpointing did happen: every watched block ran again in backward
    assert plain_counts[0] > 0 and cp_counts[0] == 2 * plain_counts[0]


def test_mmseg_block_checkpointing_updates_bn_statistics_twice():
    """What the helper exists for: mmseg's Bottleneck(with_cp=True) moves the running
    statistics once more during backward, so they differ from a plain step."""
    torch.manual_seed(0)
    plain = _dilated_resnet(False).train()
    randomize_conv_bn_(plain)
    theirs = copy.deepcopy(plain)
    for block in theirs.layer4:
        block.with_cp = True
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    bn_plain, bn_theirs = _step(plain, x)[2], _step(theirs, x)[2]
    assert not torch.equal(bn_plain['layer4.0.bn1.running_mean'],
                           bn_theirs['layer4.0.bn1.running_mean'])
    assert bn_theirs['layer4.0.bn1.num_batches_tracked'] == 2
    assert bn_plain['layer4.0.bn1.num_batches_tracked'] == 1


def test_restore_norm_stats_and_checkpoint_module():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).train()
    before = _bn_buffers(block)
    with restore_norm_stats(block):
        block(torch.randn(2, 3, 8, 8))
    after = _bn_buffers(block)
    assert all(torch.equal(before[k], after[k]) for k in before)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    reference = copy.deepcopy(block)
    checkpoint_module(block, x).sum().backward()
    reference(x.detach()).sum()
    assert all(torch.equal(a, b) for a, b in zip(_bn_buffers(block).values(),
                                                  _bn_buffers(reference).values()))
