"""kazuto1011/deeplab-pytorch DeepLabv2 ResNet-101 files -> DilatedResNet + ASPPHead.

That project ports the authors' Caffe DeepLabv2 to PyTorch. Its files come in three forms:

* trained models (``deeplabv2_resnet101_msc-vocaug-20000.pth``, ``...-cocostuff10k-20000.pth``,
  ``...-cocostuff164k-100000.pth``, and what its ``convert.py`` writes from the Caffe model):
  the state dict of its multi-scale wrapper, every key starting with ``base.``;
* the same network saved without the wrapper (keys without ``base.``), e.g. ``model.base``;
* the Caffe-converted initialisation (``deeplabv1_resnet101-coco.pth``, made from the authors'
  ``init.caffemodel``): the ResNet-101 body plus a 1x1 COCO classifier ``fc`` (91 classes).

Its layout (one ``_ConvBnReLU`` = ``conv`` + ``bn`` per convolution)::

    layer1.conv1.{conv,bn}                 -> conv1, bn1                (7x7 stem)
    layer{2-5}.block{k}.reduce.{conv,bn}   -> layer{1-4}.{k-1}.conv1, bn1   (1x1, strided)
    layer{2-5}.block{k}.conv3x3.{conv,bn}  -> layer{1-4}.{k-1}.conv2, bn2   (3x3, dilated)
    layer{2-5}.block{k}.increase.{conv,bn} -> layer{1-4}.{k-1}.conv3, bn3
    layer{2-5}.block1.shortcut.{conv,bn}   -> layer{1-4}.0.downsample.{0,1}
    aspp.c{i}.{weight,bias}                -> decode_head.branches.{i}   (3x3, rates 6/12/18/24)

Trained models become whole-segmentor keys (``backbone.``/``decode_head.``, load with
``load_from`` or ``tools/test.py``); the init file becomes bare backbone keys (load with the
backbone's ``init_cfg=dict(type='Pretrained', ...)``) and its ``fc`` is dropped: a COCO
classifier of the DeepLab-v1-style network the authors pre-trained, which DeepLabv2 replaces by
the ASPP (the original training script loads this file with ``strict=False`` and so skips it
too). The network needs ``DilatedResNet(style='caffe', stem_pool_ceil_mode=True)``: the stride
sits in the first 1x1 conv and the stem pool rounds up (``configs/deeplabv2/*kazuto-weights.py``).

Command line::

    python tools/model_converters/convert.py deeplab-kazuto \\
        deeplabv2_resnet101_msc-vocaug-20000.pth checkpoints/deeplabv2_r101_voc12aug_kazuto.pth
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

from torch import Tensor

from ..models.backbones.dilated_resnet import STAGE_BLOCKS
from .keys import BN_LEAF
from .registry import (ConversionError, Converted, first_keys, refuse_unknown, register_source,
                       unwrap_state_dict, wrong_shapes)

SOURCE = 'deeplab-kazuto'
MSC_PREFIX = 'base.'
STEM_KEY = re.compile(rf'^layer1\.conv1\.(conv\.weight|bn\.{BN_LEAF})$')
BLOCK_KEY = re.compile(
    rf'^layer([2-5])\.block(\d+)\.(reduce|conv3x3|increase|shortcut)\.(conv\.weight|bn\.{BN_LEAF})$')
ASPP_KEY = re.compile(r'^aspp\.c(\d+)\.(weight|bias)$')
INIT_CLASSIFIER_KEY = re.compile(r'^fc\.(weight|bias)$')

_BRANCH = {'reduce': '1', 'conv3x3': '2', 'increase': '3'}
EXPECTED = ('kazuto1011/deeplab-pytorch DeepLabV2 / DeepLabV1 ResNet (layer1.conv1, '
            'layer2-5.blockK.{reduce,conv3x3,increase,shortcut}, aspp.cI or fc)')
INIT_CLASSIFIER_REASON = ('1x1 COCO classifier of the authors\' DeepLab-v1-style init model '
                          '(init.caffemodel); DeepLabv2 replaces it by the ASPP, which starts '
                          'from scratch (the original training loads this file with '
                          'strict=False and skips it as well)')


def _target_key(key: str) -> Optional[str]:
    """Our key for one of the original's backbone keys (``None``: not a backbone key)."""
    match = STEM_KEY.match(key)
    if match:
        leaf = match.group(1)
        return 'conv1.weight' if leaf == 'conv.weight' else 'bn1.' + leaf[len('bn.'):]
    match = BLOCK_KEY.match(key)
    if not match:
        return None
    layer, block, part, leaf = match.groups()
    prefix = f'layer{int(layer) - 1}.{int(block) - 1}.'
    if part == 'shortcut':
        return prefix + ('downsample.0.weight' if leaf == 'conv.weight'
                         else 'downsample.1.' + leaf[len('bn.'):])
    return prefix + (f'conv{_BRANCH[part]}.weight' if leaf == 'conv.weight'
                     else f'bn{_BRANCH[part]}.' + leaf[len('bn.'):])


def _expected_shapes(blocks: Tuple[int, ...], num_classes: Optional[int],
                     num_branches: int) -> Dict[str, Tuple[int, ...]]:
    """Our keys -> shapes for a 7x7-stem bottleneck ResNet with ``blocks`` and the ASPP."""
    def bn(name: str, channels: int) -> Dict[str, Tuple[int, ...]]:
        shapes = {f'{name}.{p}': (channels, )
                  for p in ('weight', 'bias', 'running_mean', 'running_var')}
        shapes[f'{name}.num_batches_tracked'] = ()
        return shapes

    shapes = {'conv1.weight': (64, 3, 7, 7), **bn('bn1', 64)}
    inplanes = 64
    for stage, num_blocks in enumerate(blocks):
        mid = 64 * 2**stage
        out = 4 * mid
        for b in range(num_blocks):
            p = f'layer{stage + 1}.{b}.'
            shapes.update({p + 'conv1.weight': (mid, inplanes, 1, 1), **bn(p + 'bn1', mid),
                           p + 'conv2.weight': (mid, mid, 3, 3), **bn(p + 'bn2', mid),
                           p + 'conv3.weight': (out, mid, 1, 1), **bn(p + 'bn3', out)})
            if b == 0:
                shapes.update({p + 'downsample.0.weight': (out, inplanes, 1, 1),
                               **bn(p + 'downsample.1', out)})
            inplanes = out
    if num_classes is not None:
        for i in range(num_branches):
            shapes[f'branches.{i}.weight'] = (num_classes, inplanes, 3, 3)
            shapes[f'branches.{i}.bias'] = (num_classes, )
    return shapes


def _depth_of(backbone: Mapping[str, Tensor]) -> int:
    counts = []
    for stage in range(1, 5):
        blocks = {int(k.split('.')[1]) for k in backbone if k.startswith(f'layer{stage}.')}
        counts.append(max(blocks) + 1 if blocks else 0)
    for depth, blocks in STAGE_BLOCKS.items():
        if tuple(counts) == blocks:
            return depth
    raise ConversionError(f'{SOURCE}: the file has {tuple(counts)} blocks in res2..res5, which '
                          f'is none of the bottleneck ResNets '
                          f'{ {d: b for d, b in STAGE_BLOCKS.items()} }')


def _check_shapes(ours: Mapping[str, Tensor], expected: Mapping[str, Tuple[int, ...]],
                  origin: Mapping[str, str]) -> None:
    missing = [k for k in expected if k not in ours]
    if missing:
        raise ConversionError(f'{SOURCE}: {len(missing)} keys of the network are missing from '
                              f'the file (ours): {first_keys(missing)}')
    wrong = wrong_shapes(ours, expected, name=origin.get)
    if wrong:
        raise ConversionError(f'{SOURCE}: {len(wrong)} tensors do not have the shapes of this '
                              f'network: {first_keys(wrong, 4)}')


@register_source(SOURCE, 'kazuto1011/deeplab-pytorch DeepLabv2 ResNet-101 (MSC-wrapped "base." '
                 'or plain keys) and its Caffe-converted init file, for DilatedResNet(style='
                 "'caffe', stem_pool_ceil_mode=True) + ASPPHead")
def convert_kazuto_deeplabv2(checkpoint: Mapping, num_classes: Optional[int] = None) -> Converted:
    """Convert a kazuto1011/deeplab-pytorch DeepLabv2 (or init) state dict.

    Args:
        checkpoint: the original file's content: a state dict (``base.``-prefixed or not,
            possibly under ``state_dict``/``model`` and with ``module.`` prefixes).
        num_classes: if given, the classes the ASPP must have (e.g. 21 or 182); a trained file
            with another count is refused.

    Returns:
        :class:`Converted`: ``backbone.*``/``decode_head.branches.*`` keys for a trained model,
        bare backbone keys for the init file (its ``fc`` listed in ``dropped``); meta holds
        ``kind`` ('segmentor' or 'backbone_init'), ``depth``, ``num_classes``, and whether the
        file was ``msc_wrapped``.

    Raises:
        ConversionError: keys of another layout, a block count of no ResNet, or tensors whose
            shapes do not fit (naming the first ones).
    """
    state = unwrap_state_dict(checkpoint)
    msc_wrapped = bool(state) and all(k.startswith(MSC_PREFIX) for k in state)
    if msc_wrapped:
        state = OrderedDict((k[len(MSC_PREFIX):], v) for k, v in state.items())

    backbone: Dict[str, Tensor] = OrderedDict()
    origin: Dict[str, str] = {}
    aspp: Dict[int, Dict[str, Tensor]] = {}
    dropped: Dict[str, str] = {}
    classifier: Dict[str, Tensor] = {}
    unknown: List[str] = []
    src_prefix = MSC_PREFIX if msc_wrapped else ''
    for key, value in state.items():
        target = _target_key(key)
        if target is not None:
            backbone[target] = value
            origin[target] = src_prefix + key
            continue
        match = ASPP_KEY.match(key)
        if match:
            aspp.setdefault(int(match.group(1)), {})[match.group(2)] = value
            origin[f'branches.{match.group(1)}.{match.group(2)}'] = src_prefix + key
            continue
        if INIT_CLASSIFIER_KEY.match(key):
            classifier[key] = value
            continue
        unknown.append(src_prefix + key)
    refuse_unknown(SOURCE, unknown, EXPECTED)
    if not backbone:
        raise ConversionError(f'{SOURCE}: no ResNet key (layer1.conv1..., layer2.block1...) in '
                              f'the file; its first keys: {first_keys(list(state))}')
    if aspp and classifier:
        raise ConversionError(f'{SOURCE}: the file holds both an ASPP (aspp.c*) and a 1x1 '
                              f'classifier (fc.*), which no network of that project has')

    depth = _depth_of(backbone)
    if aspp:
        branches = sorted(aspp)
        if branches != list(range(len(branches))) or any(
                set(aspp[i]) != {'weight', 'bias'} for i in branches):
            raise ConversionError(f'{SOURCE}: ASPP branches {branches} are not numbered 0..n-1 '
                                  f'with a weight and a bias each')
        classes = int(aspp[0]['weight'].shape[0])
        if num_classes is not None and classes != num_classes:
            raise ConversionError(f'{SOURCE}: {origin["branches.0.weight"]} has '
                                  f'{tuple(aspp[0]["weight"].shape)}: {classes} classes, but '
                                  f'num_classes={num_classes} was asked for')
        ours = dict(backbone)
        for i in branches:
            for leaf, value in aspp[i].items():
                ours[f'branches.{i}.{leaf}'] = value
        _check_shapes(ours, _expected_shapes(STAGE_BLOCKS[depth], classes, len(branches)),
                      origin)
        out = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
        for i in branches:
            for leaf in ('weight', 'bias'):
                out[f'decode_head.branches.{i}.{leaf}'] = aspp[i][leaf]
        meta = dict(kind='segmentor', depth=depth, num_classes=classes,
                    aspp_branches=len(branches), msc_wrapped=msc_wrapped)
        return Converted(out, dropped, meta)

    _check_shapes(backbone, _expected_shapes(STAGE_BLOCKS[depth], None, 0), origin)
    fc_weight, fc_bias = classifier.get('fc.weight'), classifier.get('fc.bias')
    if classifier and (fc_weight is None or tuple(fc_weight.shape[1:]) != (2048, 1, 1)
                       or fc_bias is None or tuple(fc_bias.shape) != fc_weight.shape[:1]):
        shapes = {src_prefix + k: tuple(v.shape) for k, v in classifier.items()}
        raise ConversionError(f'{SOURCE}: the init file\'s classifier {shapes} is not a 1x1 '
                              f'conv on 2048 channels with a bias')
    for key in classifier:
        dropped[src_prefix + key] = INIT_CLASSIFIER_REASON
    meta = dict(kind='backbone_init', depth=depth, msc_wrapped=msc_wrapped)
    if 'fc.weight' in classifier:
        meta['init_classifier_classes'] = int(classifier['fc.weight'].shape[0])
    return Converted(backbone, dropped, meta)
