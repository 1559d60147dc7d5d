"""torchvision ResNet checkpoints -> :class:`~mmseg_hrplus.DilatedResNet` (``stem='v1'``).

torchvision's ResNet-50/101/152 (``resnet101-*.pth``) and mmseg's ``ResNet`` with the 7x7 stem
share one key layout: ``conv1``, ``bn1``, ``layer{1-4}.{k}.conv{1-3}`` / ``bn{1-3}``, and
``layer{1-4}.0.downsample.{0,1}`` (1x1 conv, BN). Both put the stride on the 3x3 conv, so the
tensors carry over unchanged; only the ImageNet classifier (``fc.weight``, ``fc.bias``) has no
counterpart. The converter drops it, strips wrappers (``state_dict``/``model`` entries,
``module.`` prefixes) and refuses any key it does not recognise, so that a wrong file fails here
instead of loading half-way under ``strict=False``.

Command line::

    python tools/model_converters/convert.py torchvision-resnet resnet101-63fe2227.pth \\
        checkpoints/resnet101_torchvision_v1.pth
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping

from torch import Tensor

from .keys import BN_LEAF
from .registry import Converted, refuse_unknown, register_source, unwrap_state_dict

SOURCE = 'torchvision-resnet'

BACKBONE_KEY = re.compile(
    r'^(conv1\.weight'
    rf'|bn1\.{BN_LEAF}'
    r'|layer[1-4]\.\d+\.conv[1-3]\.weight'
    rf'|layer[1-4]\.\d+\.bn[1-3]\.{BN_LEAF}'
    r'|layer[1-4]\.\d+\.downsample\.0\.weight'
    rf'|layer[1-4]\.\d+\.downsample\.1\.{BN_LEAF})$')
CLASSIFIER_KEY = re.compile(r'^fc\.(weight|bias)$')


def convert_torchvision_resnet(checkpoint: Mapping, prefix: str = '') -> Dict[str, Tensor]:
    """Map a torchvision ResNet state dict to DilatedResNet (``stem='v1'``) keys.

    Args:
        checkpoint: torchvision state dict (``{'conv1.weight': (64, 3, 7, 7), ...,
            'fc.weight': (1000, 2048)}``), possibly under ``'state_dict'``/``'model'`` and
            with ``module.`` prefixes.
        prefix: prepended to every key, e.g. ``'backbone.'`` for a whole segmentor.

    Returns:
        Ordered state dict without the classifier; tensors are the input tensors (not copies).

    Raises:
        ConversionError: listing keys that belong to neither the ResNet body nor the classifier.
    """
    out: Dict[str, Tensor] = OrderedDict()
    unknown = []
    for key, value in unwrap_state_dict(checkpoint).items():
        if CLASSIFIER_KEY.match(key):
            continue
        if not BACKBONE_KEY.match(key):
            unknown.append(key)
            continue
        out[prefix + key] = value
    refuse_unknown(SOURCE, unknown, 'a torchvision ResNet (conv1, bn1, layer1-4, fc)')
    return out


@register_source(SOURCE, 'torchvision ResNet-50/101/152 ImageNet weights, for '
                 "DilatedResNet(stem='v1') via init_cfg")
def convert_torchvision_resnet_source(checkpoint: Mapping, prefix: str = '') -> Converted:
    """:func:`convert_torchvision_resnet`, reporting the dropped classifier."""
    state = convert_torchvision_resnet(checkpoint, prefix=prefix)
    dropped = {key: 'ImageNet classifier, no counterpart in a segmentation backbone'
               for key in unwrap_state_dict(checkpoint) if CLASSIFIER_KEY.match(key)}
    return Converted(state, dropped)
