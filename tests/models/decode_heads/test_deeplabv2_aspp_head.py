"""DeepLabV2ASPPHead (registered also as ASPPHead): summed atrous classifiers, every parameter
trained, mmseg contract."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample

from mmseg_hrplus.models.backbones.dilated_resnet import DilatedResNet
from mmseg_hrplus.models.decode_heads.aspp_head import ASPPHead, DeepLabV2ASPPHead, FCBranch
from mmseg_hrplus.registry import MODELS


def samples(labels: torch.Tensor):
    out = []
    for label in labels:
        s = SegDataSample(gt_sem_seg=PixelData(data=label[None].long()))
        s.set_metainfo(dict(img_shape=tuple(label.shape), pad_shape=tuple(label.shape),
                            ori_shape=tuple(label.shape)))
        out.append(s)
    return out


def random_labels(n, h, w, num_classes, ignore=255):
    labels = torch.randint(0, num_classes, (n, h, w))
    labels[:, :2] = ignore
    return labels


@pytest.mark.parametrize('branch_channels', [None, 8])
def test_one_backward_reaches_every_parameter(branch_channels):
    head = ASPPHead(in_channels=16, num_classes=5, branch_channels=branch_channels)
    head.init_weights()
    head.train()
    feats = [torch.randn(2, 16, 8, 8)]
    losses = head.loss(feats, samples(random_labels(2, 32, 32, 5)), train_cfg={})
    losses['loss_ce'].backward()
    names = [n for n, _ in head.named_parameters()]
    assert not any('conv_seg' in n for n in names) and not hasattr(head, 'conv_seg')
    per_branch = 2 if branch_channels is None else 6
    assert len(names) == 4 * per_branch
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_output_is_the_sum_of_the_four_atrous_branches():
    head = ASPPHead(in_channels=16, num_classes=5).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_()
    x = torch.randn(2, 16, 13, 11)
    expected = sum(F.conv2d(x, branch.weight, branch.bias, padding=rate, dilation=rate)
                   for branch, rate in zip(head.branches, (6, 12, 18, 24)))
    with torch.no_grad():
        out = head([x])
    assert out.shape == (2, 5, 13, 11)
    # the head runs these convs and sums them in this order: bit for bit
    assert torch.equal(out, expected), (out - expected).abs().max().item()
    assert [b.dilation for b in head.branches] == [(r, r) for r in (6, 12, 18, 24)]
    assert all(b.kernel_size == (3, 3) and b.bias is not None for b in head.branches)


def test_default_init_is_normal_std_001_zero_bias():
    head = ASPPHead(in_channels=256, num_classes=21)
    head.init_weights()
    for branch in head.branches:
        assert abs(branch.weight.std().item() - 0.01) < 0.001
        assert branch.bias.abs().max() == 0
    # 4 x (3*3*256*21 + 21)
    assert sum(p.numel() for p in head.parameters()) == 4 * (9 * 256 * 21 + 21)


def test_vgg_branch_form():
    head = ASPPHead(in_channels=32, num_classes=5, branch_channels=64, dilations=(2, 4))
    head.init_weights()
    assert isinstance(head.branches[0], FCBranch) and head.dropout_ratio == 0.5
    b = head.branches[1]
    assert b.fc6.dilation == (4, 4) and b.fc6.kernel_size == (3, 3)
    assert b.fc7.kernel_size == (1, 1) and b.fc8.out_channels == 5
    assert b.drop6.p == 0.5 and b.drop7.p == 0.5
    assert abs(b.fc8.weight.std().item() - 0.01) < 0.002 and b.fc8.bias.abs().max() == 0
    assert b.fc6.weight.std() > 0.05  # Kaiming, not the logit init
    assert sum(p.numel() for p in head.parameters()) == 2 * (
        9 * 32 * 64 + 64 + 64 * 64 + 64 + 64 * 5 + 5)
    head.eval()
    x = torch.randn(1, 32, 9, 9)
    with torch.no_grad():
        out = head([x])
        expected = sum(br(x) for br in head.branches)
    assert out.shape == (1, 5, 9, 9) and torch.equal(out, expected)


def test_ignore_index_reaches_the_loss():
    head = ASPPHead(in_channels=8, num_classes=4, ignore_index=3)
    feats = [torch.randn(1, 8, 4, 4)]
    labels = torch.randint(0, 4, (1, 16, 16))
    loss = head.loss(feats, samples(labels), train_cfg={})['loss_ce']
    logits = F.interpolate(head(feats), size=(16, 16), mode='bilinear', align_corners=False)
    # mmseg's CrossEntropyLoss (avg_non_ignore=False) averages over all pixels.
    expected = F.cross_entropy(logits, labels, ignore_index=3, reduction='none').mean()
    assert torch.equal(loss, expected)  # mmseg's CrossEntropyLoss runs these ops
    assert not torch.allclose(loss, F.cross_entropy(logits, labels))


def test_sampler_and_align_corners():
    head = ASPPHead(in_channels=8, num_classes=4, align_corners=True,
                    sampler=dict(type='OHEMPixelSampler', min_kept=20))
    assert type(head.sampler).__name__ == 'OHEMPixelSampler'
    feats = [torch.randn(2, 8, 5, 5)]
    losses = head.loss(feats, samples(random_labels(2, 17, 17, 4)), train_cfg={})
    assert torch.isfinite(losses['loss_ce'])
    metas = [dict(img_shape=(17, 17), pad_shape=(17, 17))] * 2
    pred = head.predict(feats, metas, test_cfg={})
    expected = F.interpolate(head(feats), size=(17, 17), mode='bilinear', align_corners=True)
    assert torch.equal(pred, expected)


def test_check_inputs_against_backbone():
    backbone = DilatedResNet(depth=50, base_channels=16, stem_channels=16)
    head = ASPPHead(in_channels=512, in_index=3, num_classes=3)
    assert head.check_inputs(backbone.out_specs)[0].stride == 8
    with pytest.raises(ValueError, match='DeepLabV2ASPPHead: in_channels=.2048.'):
        ASPPHead(in_channels=2048, num_classes=3).check_inputs(backbone.out_specs)


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(dilations=()), r'dilations must be a non-empty sequence of ints >= 1, got \(\)'),
    (dict(dilations=(6, 0)), r'dilations must be .* got \(6, 0\)'),
    (dict(branch_channels=0), r'branch_channels=0'),
    (dict(dropout_ratio=1.0), r'dropout_ratio=1.0 must be in \[0, 1\)'),
    (dict(norm_cfg=dict(type='BN')), r'norm_cfg=.* allowed value: None'),
    (dict(input_transform='multiple_select', in_index=(0, 1), in_channels=(4, 4)),
     r"input_transform='multiple_select' .*allowed values"),
])
def test_bad_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ASPPHead(**{'in_channels': 8, 'num_classes': 3, **kwargs})


@pytest.fixture(scope='module')
def segmentor() -> EncoderDecoder:
    with DefaultScope.overwrite_default_scope('mmseg'):  # for SegDataPreProcessor
        model = build_segmentor()
    model.init_weights()
    return model


def build_segmentor() -> EncoderDecoder:
    return MMSEG_MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0., 0., 0.], std=[1., 1., 1.]),
        backbone=dict(type='mmseg_hrplus.DilatedResNet', depth=50, output_stride=8,
                      base_channels=16, stem_channels=16, out_indices=(3, )),
        decode_head=dict(type='mmseg_hrplus.ASPPHead', in_channels=512, in_index=0,
                         num_classes=6),
        train_cfg=ConfigDict(), test_cfg=ConfigDict(mode='whole')))


def test_encoder_decoder_loss_and_predict(segmentor):
    assert isinstance(segmentor.backbone, DilatedResNet)
    assert isinstance(segmentor.decode_head, ASPPHead)
    x = torch.randn(2, 3, 40, 32)
    segmentor.train()
    losses = segmentor.loss(x, samples(random_labels(2, 40, 32, 6)))
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}
    losses['decode.loss_ce'].backward()
    assert all(p.grad is not None for p in segmentor.decode_head.parameters())

    segmentor.eval()
    with torch.no_grad():
        logits = segmentor(x, mode='tensor')  # the head's raw output
        results = segmentor.predict(x, samples(random_labels(2, 40, 32, 6)))
    assert tuple(logits.shape) == (2, 6, 40 // 8, 32 // 8)  # output stride 8
    assert tuple(results[0].seg_logits.data.shape) == (6, 40, 32)
    assert tuple(results[0].pred_sem_seg.data.shape) == (1, 40, 32)


def test_registered_name_and_the_old_alias_build_the_same_head():
    assert ASPPHead is DeepLabV2ASPPHead
    assert MODELS.get('DeepLabV2ASPPHead') is MODELS.get('ASPPHead') is DeepLabV2ASPPHead
    for name in ('mmseg_hrplus.DeepLabV2ASPPHead', 'mmseg_hrplus.ASPPHead'):
        head = MODELS.build(dict(type=name, in_channels=8, num_classes=3))
        assert type(head) is DeepLabV2ASPPHead
