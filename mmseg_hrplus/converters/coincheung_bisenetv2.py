"""CoinCheung/BiSeNet BiSeNetV2 checkpoints -> our BiSeNetV2 + BGAHead + BoosterHead keys.

CoinCheung's ``lib/models/bisenetv2.py`` (``model_final_v2_city.pth``, ``..._coco.pth``,
``..._ade20k.pth``) saves the bare network's ``state_dict()``: ``detail.*`` and ``segment.*``
(the two branches), ``bga.*`` (the aggregation), ``head.*`` (the seg head) and, for a model
saved in its training mode, ``aux2/aux3/aux4/aux5_4.*`` (booster heads on the Stem and
stages 3, 4, 5). The layers are the same as ours except for:

* the aggregation: its two 1x1 convs have no bias and both semantic-side maps are upsampled
  nearest x4 -> ``BGAHead(upsample_mode='nearest', pointwise_bias=False)``;
* the booster heads: 3x3 conv-BN-ReLU to 128, nearest x2, 3x3 conv-BN-ReLU to
  16/64/256/1024, 1x1 classifier -> ``BoosterHead(num_convs=2, hidden_channels=128,
  upsample_before_last_conv=2, channels=16/64/256/1024)``; their weights are converted.

Their seg head (3x3 conv 128->1024-BN-ReLU, dropout 0.1, 1x1 -> classes, bilinear x8 with
``align_corners=False``) is our ``BGAHead`` seg conv + ``conv_seg`` followed by mmseg's resize
to the input size. ``configs/bisenetv2/bisenetv2_cityscapes_coincheung-weights.py`` is the
whole network with these settings.

The number of classes is read from the file (19 Cityscapes, 171 COCO-Stuff, 150 ADE20K) and
every converted tensor's shape is checked against our model built for it.

Command line:
``python tools/model_converters/convert.py bisenet-coincheung model_final_v2_city.pth DST``.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from .keys import BN_LEAF
from .registry import (ConversionError, Converted, first_keys, refuse_unknown, register_source,
                       unwrap_state_dict, wrong_shapes)

SOURCE = 'bisenet-coincheung'

#: CoinCheung's booster heads, in the order of our ``auxiliary_head`` list:
#: (source name, backbone output index, tap channels, second conv width).
AUX_HEADS: Tuple[Tuple[str, int, int, int], ...] = (
    ('aux2', 2, 16, 16), ('aux3', 3, 32, 64), ('aux4', 4, 64, 256), ('aux5_4', 5, 128, 1024))
AUX_HIDDEN_CHANNELS = 128

# Parts of a GE layer (source module path inside the layer -> ours).
_GE_PARTS = {
    'conv1.conv': 'conv_in.conv', 'conv1.bn': 'conv_in.bn',
    'dwconv.0': 'expand.0.conv', 'dwconv.1': 'expand.0.bn',          # stride 1
    'dwconv1.0': 'expand.0.conv', 'dwconv1.1': 'expand.0.bn',        # stride 2
    'dwconv2.0': 'expand.1.conv', 'dwconv2.1': 'expand.1.bn',
    'conv2.0': 'project.conv', 'conv2.1': 'project.bn',
    'shortcut.0': 'shortcut.depthwise_conv.conv', 'shortcut.1': 'shortcut.depthwise_conv.bn',
    'shortcut.2': 'shortcut.pointwise_conv.conv', 'shortcut.3': 'shortcut.pointwise_conv.bn',
}
_GE_STAGES = {'S3': 0, 'S4': 1, 'S5_4': 2}

# Modules at fixed paths (source -> ours).
_FIXED = {
    'segment.S1S2.conv.conv': 'backbone.stem.conv_in.conv',
    'segment.S1S2.conv.bn': 'backbone.stem.conv_in.bn',
    'segment.S1S2.left.0.conv': 'backbone.stem.conv_branch.0.conv',
    'segment.S1S2.left.0.bn': 'backbone.stem.conv_branch.0.bn',
    'segment.S1S2.left.1.conv': 'backbone.stem.conv_branch.1.conv',
    'segment.S1S2.left.1.bn': 'backbone.stem.conv_branch.1.bn',
    'segment.S1S2.fuse.conv': 'backbone.stem.fuse.conv',
    'segment.S1S2.fuse.bn': 'backbone.stem.fuse.bn',
    'segment.S5_5.bn': 'backbone.context.gap_norm',
    'segment.S5_5.conv_gap.conv': 'backbone.context.conv_gap.conv',
    'segment.S5_5.conv_gap.bn': 'backbone.context.conv_gap.bn',
    'segment.S5_5.conv_last.conv': 'backbone.context.conv_out.conv',
    'segment.S5_5.conv_last.bn': 'backbone.context.conv_out.bn',
    # BGA: left1 = detail DW-BN-1x1, left2 = detail 3x3 s2-BN-avgpool, right1 = semantic
    # 3x3-BN, right2 = semantic DW-BN-1x1, conv = fuse 3x3-BN-ReLU.
    'bga.left1.0': 'decode_head.bga.detail_dw.depthwise_conv.conv',
    'bga.left1.1': 'decode_head.bga.detail_dw.depthwise_conv.bn',
    'bga.left1.2': 'decode_head.bga.detail_dw.pointwise_conv.conv',
    'bga.left2.0': 'decode_head.bga.detail_down.0.conv',
    'bga.left2.1': 'decode_head.bga.detail_down.0.bn',
    'bga.right1.0': 'decode_head.bga.semantic_conv.conv',
    'bga.right1.1': 'decode_head.bga.semantic_conv.bn',
    'bga.right2.0': 'decode_head.bga.semantic_dw.depthwise_conv.conv',
    'bga.right2.1': 'decode_head.bga.semantic_dw.depthwise_conv.bn',
    'bga.right2.2': 'decode_head.bga.semantic_dw.pointwise_conv.conv',
    'bga.conv.0': 'decode_head.bga.fuse.conv',
    'bga.conv.1': 'decode_head.bga.fuse.bn',
    'head.conv.conv': 'decode_head.seg_conv.conv',
    'head.conv.bn': 'decode_head.seg_conv.bn',
    'head.conv_out.1': 'decode_head.conv_seg',
}
_AUX_PARTS = {'conv.conv': 'convs.0.conv', 'conv.bn': 'convs.0.bn',
              'conv_out.0.1.conv': 'convs.1.conv', 'conv_out.0.1.bn': 'convs.1.bn',
              'conv_out.1': 'conv_seg'}
_AUX_INDEX = {name: i for i, (name, *_) in enumerate(AUX_HEADS)}

_KEY = re.compile(rf'^(.+)\.({BN_LEAF})$')  # conv leaves are BN leaves too
_DETAIL = re.compile(r'^detail\.S([123])\.(\d+)\.(conv|bn)$')
_GE = re.compile(r'^segment\.(S3|S4|S5_4)\.(\d+)\.(.+)$')
_AUX = re.compile(r'^(aux2|aux3|aux4|aux5_4)\.(.+)$')
CLASSIFIER = 'head.conv_out.1.weight'


def _map_module(path: str) -> Optional[str]:
    """Our module path for a source module path, or None."""
    if path in _FIXED:
        return _FIXED[path]
    match = _DETAIL.match(path)
    if match:
        return f'backbone.detail_branch.{int(match.group(1)) - 1}.{match.group(2)}.' \
               f'{match.group(3)}'
    match = _GE.match(path)
    if match and match.group(3) in _GE_PARTS:
        return f'backbone.semantic_stages.{_GE_STAGES[match.group(1)]}.{match.group(2)}.' \
               f'{_GE_PARTS[match.group(3)]}'
    match = _AUX.match(path)
    if match and match.group(2) in _AUX_PARTS:
        return f'auxiliary_head.{_AUX_INDEX[match.group(1)]}.{_AUX_PARTS[match.group(2)]}'
    return None


def map_key(key: str) -> Optional[str]:
    """Our state-dict key for a CoinCheung BiSeNetV2 key, or None when no rule covers it."""
    match = _KEY.match(key)
    if not match:
        return None
    module = _map_module(match.group(1))
    return None if module is None else f'{module}.{match.group(2)}'


def target_shapes(num_classes: int, with_aux: bool = True) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of our model for CoinCheung's BiSeNetV2 (built on the meta device)."""
    from mmseg_hrplus.models.backbones.bisenetv2 import BiSeNetV2
    from mmseg_hrplus.models.decode_heads.bga_head import BGAHead
    from mmseg_hrplus.models.decode_heads.booster_head import BoosterHead
    parts = {}
    with torch.device('meta'):
        parts['backbone'] = BiSeNetV2(arch='base')
        parts['decode_head'] = BGAHead(
            (128, 128), 1024, in_index=(0, 1), bga_channels=128, stride_ratio=4,
            upsample_mode='nearest', pointwise_bias=False, num_classes=num_classes)
        if with_aux:
            for i, (_, index, in_channels, channels) in enumerate(AUX_HEADS):
                parts[f'auxiliary_head.{i}'] = BoosterHead(
                    in_channels, channels, in_index=index, num_convs=2,
                    hidden_channels=AUX_HIDDEN_CHANNELS, upsample_before_last_conv=2,
                    num_classes=num_classes)
    return OrderedDict((f'{prefix}.{key}', tuple(value.shape))
                       for prefix, module in parts.items()
                       for key, value in module.state_dict().items())


@register_source(SOURCE, "CoinCheung/BiSeNet's BiSeNetV2 (lib/models/bisenetv2.py) state dicts")
def convert_coincheung_bisenetv2(checkpoint: Mapping) -> Converted:
    """Map a CoinCheung BiSeNetV2 state dict to our keys.

    Args:
        checkpoint: the network's ``state_dict()`` as CoinCheung's ``train_amp.py`` saves it,
            or a dict holding it under ``'state_dict'``/``'model'``; ``module.`` prefixes
            (DDP) are stripped.

    Returns:
        :class:`Converted` for ``EncoderDecoder(BiSeNetV2, BGAHead, [BoosterHead] x 4)`` as in
        ``configs/bisenetv2/bisenetv2_cityscapes_coincheung-weights.py``; ``meta`` holds
        ``num_classes`` and whether the booster heads were in the file (a model saved in
        CoinCheung's ``'eval'`` mode has none; then only the inference model loads strictly).
        Nothing is dropped: every source tensor has a counterpart.

    Raises:
        ConversionError: keys no rule covers (another model, mmseg's key layout, BiSeNetV1,
            ...), missing keys, or shapes that are not those of CoinCheung's BiSeNetV2.
    """
    state = unwrap_state_dict(checkpoint)
    mapped: Dict[str, Tensor] = OrderedDict()
    unknown: List[str] = []
    for key, value in state.items():
        new_key = map_key(key)
        if new_key is None or not isinstance(value, Tensor):
            unknown.append(key)
        else:
            mapped[new_key] = value
    refuse_unknown(SOURCE, unknown, "CoinCheung's BiSeNetV2 (detail, segment, bga, head, "
                                    'aux2/aux3/aux4/aux5_4)')
    if CLASSIFIER not in state or state[CLASSIFIER].dim() != 4:
        raise ConversionError(f'{SOURCE}: no 4-d {CLASSIFIER} (the seg head classifier) among '
                              f'the keys {first_keys(state)}')
    num_classes = int(state[CLASSIFIER].shape[0])
    has_aux = any(key.startswith('auxiliary_head.') for key in mapped)
    expected = target_shapes(num_classes, with_aux=has_aux)

    # Every mapped key is a key of our model: e.g. a bias on the BGA 1x1 convs is not.
    extra = [src for src, value in state.items() if map_key(src) not in expected]
    refuse_unknown(SOURCE, extra, "CoinCheung's BiSeNetV2 (a key our converted model has no "
                                  'place for)')
    missing = [key for key in expected if key not in mapped]
    if missing:
        what = 'booster heads must be all present or all absent; ' if has_aux and all(
            k.startswith('auxiliary_head.') for k in missing) else ''
        raise ConversionError(f'{SOURCE}: {what}{len(missing)} keys of the model are missing '
                              f'from the file: {first_keys(missing)}')
    source_key = {map_key(src): src for src in state}
    wrong = wrong_shapes(mapped, expected, name=source_key.get)
    if wrong:
        raise ConversionError(f'{SOURCE}: {len(wrong)} tensors do not have the shapes of '
                              f'CoinCheung\'s BiSeNetV2 with {num_classes} classes (another '
                              f'width or variant?): {first_keys(wrong, limit=4)}')
    return Converted(mapped, dropped={},
                     meta={'num_classes': num_classes, 'auxiliary_heads': has_aux})
