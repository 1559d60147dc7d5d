"""Official HRNet checkpoints (HRNet-Semantic-Segmentation, HRNet-Image-Classification) -> ours.

Two source formats:

``hrnet-seg``
    ``seg_hrnet`` models of github.com/HRNet/HRNet-Semantic-Segmentation (HRNetV2 + its
    ``last_layer`` head: Cityscapes W48 / W18-Small-v1 / W18-Small-v2, and the other datasets'
    W48 files). Its training script wraps the network with the loss (``FullModel``), so saved
    files hold ``model.<key>`` plus the loss's class weights ``loss.criterion.weight``; the
    plain form (``<key>`` only, as its test script loads it) is accepted too, as are the
    ``{'state_dict': ...}`` / ``module.`` wrappers. Output: a whole ``EncoderDecoder`` state dict
    (``backbone.*`` for :class:`~mmseg_hrplus.HRNet`, ``decode_head.*`` for mmseg's
    ``FCNHead`` with ``input_transform='resize_concat'``, ``kernel_size=1``, ``num_convs=1``,
    ``concat_input=False``), for ``configs/hrnet/*_official-weights.py``.

``hrnet-imagenet``
    ImageNet classification backbones of github.com/HRNet/HRNet-Image-Classification
    (``hrnetv2_w18_imagenet_pretrained.pth`` ...). Output: the backbone keys only (no prefix),
    for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``; the classification modules are
    dropped with their reason (see :data:`CLS_HEAD_REASONS`).

Key layout: the backbone keys of both are already ours (``conv1``/``bn1``/``conv2``/``bn2``,
``layer1``, ``transition1..3``, ``stage2..4.{m}.branches/fuse_layers``). The segmentation head
maps as::

    last_layer.0 (1x1 conv, with bias)  -> decode_head.convs.0.conv   (no bias, bias folded)
    last_layer.1 (BN)                   -> decode_head.convs.0.bn
    last_layer.3 (1x1 conv -> classes)  -> decode_head.conv_seg

Bias folding: the original's first head conv has a bias ``b`` followed by BN; mmseg's
``ConvModule`` has no conv bias before a norm. ``BN(Wx + b)`` with running mean ``m`` equals
``BN(Wx)`` with running mean ``m - b`` exactly in eval mode; in training the batch mean of
``Wx + b`` is that of ``Wx`` plus ``b``, so the normalised output is unchanged, the running mean
tracks ``m - b`` consistently, and ``b`` receives no gradient there in the original either.

The architecture is read from the file (stage-1 blocks and planes, modules, blocks and widths
per stage) and checked against a model built from it on the meta device: every key and shape
must fit. ``meta['arch']`` names the matching preset of :data:`~mmseg_hrplus.models.backbones.
hrnet.ARCH_PRESETS` (``None`` for other widths, with ``meta['extra']`` then); pass ``arch=`` to
require one (a file of another width fails, naming the first key whose shape does not fit).
Files saved without ``num_batches_tracked`` (InPlaceABN / torch 0.4.0 era) get zeros for them,
listed in ``meta['added_keys']``.

Command line::

    python tools/model_converters/convert.py hrnet-seg \\
        hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth \\
        checkpoints/hrnet_w48_cityscapes_official-weights.pth
    python tools/model_converters/convert.py hrnet-imagenet \\
        hrnetv2_w48_imagenet_pretrained.pth checkpoints/hrnetv2_w48_imagenet_official.pth
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from .registry import (ConversionError, Converted, first_keys, refuse_unknown, register_source,
                       unwrap_state_dict, wrong_shapes)

BACKBONE_PREFIXES = ('conv1.', 'bn1.', 'conv2.', 'bn2.', 'layer1.', 'transition1.',
                     'transition2.', 'transition3.', 'stage2.', 'stage3.', 'stage4.')
SEG_HEAD_PREFIX = 'last_layer.'
LOSS_WEIGHT_KEY = 'loss.criterion.weight'

#: hrnet-imagenet: the classification modules on top of the four streams, and why each goes.
CLS_HEAD_REASONS: Dict[str, str] = {
    'incre_modules.': 'ImageNet classification head: one Bottleneck per stream widening it to '
                      '128/256/512/1024 channels; HRNetV2 segmentation reads the four streams '
                      'themselves, so it has no counterpart in the backbone',
    'downsamp_modules.': 'ImageNet classification head: stride-2 3x3 convs folding the widened '
                         'streams into the 1/32 one; no counterpart in the backbone',
    'final_layer.': 'ImageNet classification head: 1x1 conv to 2048 channels before global '
                    'pooling; no counterpart in the backbone',
    'classifier.': 'ImageNet 1000-class linear classifier; a segmentation model has its own '
                   'head',
}

#: Cityscapes' 19 training classes, in the order of the official label mapping (and mmseg's).
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                      'truck', 'bus', 'train', 'motorcycle', 'bicycle')


def _is_backbone(key: str) -> bool:
    return key.startswith(BACKBONE_PREFIXES)


def _shape(t) -> Tuple[int, ...]:
    return tuple(t.shape)


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    """How many distinct values the ``(\\d+)`` group of ``pattern`` takes over the keys."""
    regex = re.compile(pattern)
    return len({m.group(1) for m in map(regex.match, state) if m})


def infer_extra(source: str, state: Mapping[str, Tensor]) -> dict:
    """The mmseg-style ``extra`` dict of the HRNet whose backbone keys are in ``state``."""
    def need(key: str) -> Tensor:
        if key not in state:
            raise ConversionError(f'{source}: no {key!r}: not an HRNet backbone (keys: '
                                  f'{first_keys(state)})')
        return state[key]

    block1 = 'BOTTLENECK' if 'layer1.0.conv3.weight' in state else 'BASIC'
    extra = dict(stage1=dict(
        num_modules=1, num_branches=1, block=block1,
        num_blocks=(_count(state, r'^layer1\.(\d+)\.conv1\.weight$'), ),
        num_channels=(_shape(need('layer1.0.conv1.weight'))[0], )))
    for s in (2, 3, 4):
        block = 'BOTTLENECK' if f'stage{s}.0.branches.0.0.conv3.weight' in state else 'BASIC'
        extra[f'stage{s}'] = dict(
            num_modules=_count(state, rf'^stage{s}\.(\d+)\.branches\.'),
            num_branches=s, block=block,
            num_blocks=tuple(_count(state, rf'^stage{s}\.0\.branches\.{b}\.(\d+)\.conv1\.weight$')
                             for b in range(s)),
            num_channels=tuple(_shape(need(f'stage{s}.0.branches.{b}.0.conv1.weight'))[0]
                               for b in range(s)))
    return extra


def _expected_backbone(source: str, arch: Optional[str], extra: dict) -> Dict[str, Tuple]:
    """Key -> shape of our HRNet (built on the meta device: no memory, no init)."""
    from mmseg_hrplus.models.backbones.hrnet import HRNet
    try:
        with torch.device('meta'):
            net = HRNet(arch, init_cfg=None) if arch is not None else HRNet(extra=extra,
                                                                            init_cfg=None)
    except ValueError as err:
        raise ConversionError(f'{source}: the file describes no HRNet we can build ({err})')
    return OrderedDict((k, _shape(v)) for k, v in net.state_dict().items())


def _preset_of(extra: dict) -> Optional[str]:
    from mmseg_hrplus.models.backbones.hrnet import ARCH_PRESETS, extra_to_stages
    try:
        stages = extra_to_stages(extra)
    except ValueError:
        return None
    return next((name for name, preset in ARCH_PRESETS.items() if preset.stages() == stages),
                None)


def convert_backbone(source: str, state: Mapping[str, Tensor], arch: Optional[str] = None
                     ) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Check the backbone keys of ``state`` against our HRNet and return them (filling in
    missing ``num_batches_tracked``) with meta ``arch``/``extra``/``added_keys``.

    Raises:
        ConversionError: a key or shape that does not fit (the first ones are named), or
            ``arch`` given and the file is another architecture.
    """
    backbone = OrderedDict((k, v) for k, v in state.items() if _is_backbone(k))
    extra = infer_extra(source, backbone)
    preset = _preset_of(extra)
    expected = _expected_backbone(source, arch, extra)
    wrong = [f'{k} (file {_shape(backbone[k])}, {arch or "model"} {shape})'
             for k, shape in expected.items()
             if k in backbone and _shape(backbone[k]) != shape]
    missing = [k for k in expected if k not in backbone
               and not k.endswith('.num_batches_tracked')]
    extra_keys = [k for k in backbone if k not in expected]
    if wrong or missing or extra_keys:
        what = f'arch={arch!r}' if arch is not None else 'the HRNet its shapes describe'
        parts = []
        if wrong:
            parts.append(f'first shapes that do not fit: {first_keys(wrong, 3)}')
        if missing:
            parts.append(f'{len(missing)} keys missing: {first_keys(missing, 3)}')
        if extra_keys:
            parts.append(f'{len(extra_keys)} keys not in it: {first_keys(extra_keys, 3)}')
        found = f'; the file is {preset!r}' if preset and preset != arch else ''
        raise ConversionError(f'{source}: the backbone does not fit {what}{found}: '
                              + '; '.join(parts))
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    added = []
    for key in expected:  # our order; every expected key is present or a BN counter
        if key in backbone:
            out[key] = backbone[key]
        else:
            out[key] = torch.tensor(0, dtype=torch.long)
            added.append(key)
    meta = dict(arch=preset, extra=None if preset else extra)
    if added:
        meta['added_keys'] = {k: 'absent from the file (saved before BN counted batches); '
                              'set to 0, used only with momentum=None' for k in added}
    return out, meta


def _strip_training_wrapper(source: str, state: 'OrderedDict[str, Tensor]'
                            ) -> Tuple['OrderedDict[str, Tensor]', Dict[str, str]]:
    """``model.<key>`` + ``loss.*`` (the training script's FullModel) -> ``<key>``."""
    if not any(k.startswith('model.') for k in state):
        return state, {}
    plain: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped: Dict[str, str] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith('model.'):
            plain[key[len('model.'):]] = value
        elif key == LOSS_WEIGHT_KEY:
            dropped[key] = ('class weights of the training loss (CrossEntropyLoss / OHEM, kept '
                            'in the file by the training wrapper); not part of the network. '
                            'For training, the config\'s loss_decode takes class_weight')
        else:
            unknown.append(key)
    refuse_unknown(source, unknown, 'a seg_hrnet training checkpoint (model.* and '
                   f'{LOSS_WEIGHT_KEY})')
    return plain, dropped


def convert_hrnet_seg(checkpoint: Mapping, arch: Optional[str] = None) -> Converted:
    """An official ``seg_hrnet`` checkpoint -> ``EncoderDecoder(HRNet, FCNHead)`` keys.

    Args:
        checkpoint: the file's content: a state dict (``model.``-prefixed with
            ``loss.criterion.weight``, or plain), possibly under ``'state_dict'`` and with
            ``module.`` prefixes.
        arch: if given, the preset the file must be (e.g. ``'w48'``).

    Raises:
        ConversionError: unknown keys, a missing head, a head that does not fit the backbone,
            or a backbone that is not ``arch``.
    """
    source = 'hrnet-seg'
    state, dropped = _strip_training_wrapper(source, unwrap_state_dict(checkpoint))
    hint = ''
    if any(k.startswith(tuple(CLS_HEAD_REASONS)) for k in state):
        hint = ' (an ImageNet classification file: use the hrnet-imagenet source)'
    unknown = [k for k in state if not (_is_backbone(k) or k.startswith(SEG_HEAD_PREFIX))]
    refuse_unknown(source, unknown, f'a seg_hrnet model (HRNet backbone + last_layer){hint}')
    if not any(k.startswith(SEG_HEAD_PREFIX) for k in state):
        raise ConversionError(f'{source}: no last_layer.* keys: not a seg_hrnet segmentation '
                              f'model{hint}')
    out, meta = convert_backbone(source, state, arch)
    out = OrderedDict(('backbone.' + k, v) for k, v in out.items())

    head = {k[len(SEG_HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(SEG_HEAD_PREFIX)}
    expected = ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var',
                '3.weight', '3.bias']
    missing = [SEG_HEAD_PREFIX + k for k in expected if k not in head]
    others = [SEG_HEAD_PREFIX + k for k in head if k not in expected
              and k != '1.num_batches_tracked']
    if missing or others:
        raise ConversionError(f'{source}: last_layer is not conv1x1(bias) + BN + ReLU + conv '
                              f'-> classes: missing {first_keys(missing, 4) or "none"}; '
                              f'unexpected {first_keys(others, 4) or "none"}')
    channels = _stream_channels(out)
    checks = [('0.weight', (channels, channels, 1, 1)), ('0.bias', (channels, ))]
    checks += [(f'1.{p}', (channels, )) for p in ('weight', 'bias', 'running_mean',
                                                   'running_var')]
    num_classes = head['3.weight'].shape[0]
    checks += [('3.weight', (num_classes, channels, 1, 1)), ('3.bias', (num_classes, ))]
    wrong = wrong_shapes(head, dict(checks), name=lambda k: SEG_HEAD_PREFIX + k)
    if wrong:
        raise ConversionError(f'{source}: the head does not fit a backbone with {channels} '
                              f'concatenated channels and a 1x1 classifier (FINAL_CONV_KERNEL '
                              f'1): {first_keys(wrong, 3)}')

    bias = head['0.bias']
    out['decode_head.convs.0.conv.weight'] = head['0.weight']
    out['decode_head.convs.0.bn.weight'] = head['1.weight']
    out['decode_head.convs.0.bn.bias'] = head['1.bias']
    out['decode_head.convs.0.bn.running_mean'] = head['1.running_mean'] - bias
    out['decode_head.convs.0.bn.running_var'] = head['1.running_var']
    if '1.num_batches_tracked' in head:
        out['decode_head.convs.0.bn.num_batches_tracked'] = head['1.num_batches_tracked']
    else:
        out['decode_head.convs.0.bn.num_batches_tracked'] = torch.tensor(0, dtype=torch.long)
        meta.setdefault('added_keys', {})['decode_head.convs.0.bn.num_batches_tracked'] = (
            'absent from the file; set to 0')
    out['decode_head.conv_seg.weight'] = head['3.weight']
    out['decode_head.conv_seg.bias'] = head['3.bias']

    meta.update(num_classes=num_classes, folded={
        'last_layer.0.bias': 'folded into decode_head.convs.0.bn.running_mean '
                             '(last_layer.1.running_mean - last_layer.0.bias)'})
    if num_classes == len(CITYSCAPES_CLASSES):
        meta['dataset_meta'] = dict(classes=CITYSCAPES_CLASSES)
    return Converted(out, dropped, meta)


def _stream_channels(out: Mapping[str, Tensor]) -> int:
    """Channels of the four concatenated streams: stage 4's branch widths."""
    widths = [out[f'backbone.stage4.0.branches.{b}.0.conv1.weight'].shape[0] for b in range(4)]
    blocks = [k for k in out if k.startswith('backbone.stage4.0.branches.0.0.conv3.')]
    return sum(widths) * (4 if blocks else 1)


def convert_hrnet_imagenet(checkpoint: Mapping, arch: Optional[str] = None,
                           prefix: str = '') -> Converted:
    """An official HRNet-Image-Classification checkpoint -> our HRNet backbone keys.

    Args:
        checkpoint: the classification state dict (possibly under ``'state_dict'`` and with
            ``module.`` prefixes).
        arch: if given, the preset the file must be.
        prefix: prepended to every key (``'backbone.'`` for a whole segmentor).
    """
    source = 'hrnet-imagenet'
    state = unwrap_state_dict(checkpoint)
    dropped: Dict[str, str] = {}
    unknown: List[str] = []
    for key in state:
        reason = next((why for p, why in CLS_HEAD_REASONS.items() if key.startswith(p)), None)
        if reason is not None:
            dropped[key] = reason
        elif not _is_backbone(key):
            unknown.append(key)
    hint = ''
    if any(k.startswith(('last_layer.', 'model.last_layer.')) for k in unknown):
        hint = ' (a segmentation file: use the hrnet-seg source)'
    refuse_unknown(source, unknown, 'an HRNet-Image-Classification model (HRNet backbone + '
                   f'incre_modules, downsamp_modules, final_layer, classifier){hint}')
    out, meta = convert_backbone(source, state, arch)
    return Converted(OrderedDict((prefix + k, v) for k, v in out.items()), dropped, meta)


@register_source('hrnet-seg', 'official HRNet-Semantic-Segmentation seg_hrnet models (W48, '
                 'W18-Small-v1/v2; model.* + loss.criterion.weight or plain keys)')
def convert_hrnet_seg_source(checkpoint: Mapping, arch: Optional[str] = None) -> Converted:
    return convert_hrnet_seg(checkpoint, arch=arch)


@register_source('hrnet-imagenet', 'official HRNet-Image-Classification ImageNet backbones, '
                 'for HRNet init_cfg (classification modules dropped)')
def convert_hrnet_imagenet_source(checkpoint: Mapping, arch: Optional[str] = None,
                                  prefix: str = '') -> Converted:
    return convert_hrnet_imagenet(checkpoint, arch=arch, prefix=prefix)
