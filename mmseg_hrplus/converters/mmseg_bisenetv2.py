"""mmseg BiSeNetV2 segmentor checkpoints -> our BiSeNetV2 + BGAHead + BoosterHead keys.

mmseg keeps the Bilateral Guided Aggregation inside its backbone (``backbone.bga.*``) and puts
an ``FCNHead`` (one 3x3 conv + ``conv_seg``) on its output; we keep only the two branches in
the backbone and the aggregation in :class:`~mmseg_hrplus.BGAHead`. So the converter renames
the branches' layers, MOVES ``backbone.bga.*`` to ``decode_head.bga.*`` and renames the FCN
conv to ``decode_head.seg_conv``. mmseg's auxiliary ``FCNHead`` s have the layout of our
:class:`~mmseg_hrplus.BoosterHead` with ``num_convs=2`` and keep their keys.

Only weights move. mmseg's backbone returns ``(bga, stem, stage3, stage4, stage5)``; ours
returns ``(detail, semantic, stem, stage3, stage4, stage5)``: the auxiliary heads' ``in_index``
1..4 become 2..5 (as in ``configs/bisenetv2/``).

Any key the rules do not cover (another decode head, ``num_convs=2`` in the main head, ...)
raises instead of being dropped, so a wrong checkpoint fails here, not half-loaded.

Command line: ``python tools/model_converters/convert.py mmseg-bisenetv2 SRC DST``.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Tuple, Union

from torch import Tensor

from .registry import ConversionError, Converted, refuse_unknown, register_source, unwrap_state_dict

SOURCE = 'mmseg-bisenetv2'

_Rule = Tuple[re.Pattern, Union[str, Callable[[re.Match], str]]]

# mmseg GELayer children -> ours (see GatherExpansion).
_GE_PARTS = {'conv1': 'conv_in', 'dwconv': 'expand', 'conv2.0': 'project',
             'shortcut.0': 'shortcut'}


def _ge_layer(match: re.Match) -> str:
    # mmseg numbers the semantic stages from 1 (the Stem); our ModuleList starts at stage 2.
    stage, layer, part = int(match.group(1)), match.group(2), _GE_PARTS[match.group(3)]
    return f'backbone.semantic_stages.{stage - 2}.{layer}.{part}.'


_RULES: List[_Rule] = [(re.compile(pattern), target) for pattern, target in [
    (r'^backbone\.detail\.detail_branch\.', 'backbone.detail_branch.'),
    (r'^backbone\.semantic\.stage1\.conv_first\.', 'backbone.stem.conv_in.'),
    (r'^backbone\.semantic\.stage1\.convs\.', 'backbone.stem.conv_branch.'),
    (r'^backbone\.semantic\.stage1\.fuse_last\.', 'backbone.stem.fuse.'),
    (r'^backbone\.semantic\.stage\d+_CEBlock\.gap\.1\.', 'backbone.context.gap_norm.'),
    (r'^backbone\.semantic\.stage\d+_CEBlock\.conv_gap\.', 'backbone.context.conv_gap.'),
    (r'^backbone\.semantic\.stage\d+_CEBlock\.conv_last\.', 'backbone.context.conv_out.'),
    (r'^backbone\.semantic\.stage(\d+)\.(\d+)\.(conv1|dwconv|conv2\.0|shortcut\.0)\.',
     _ge_layer),
    (r'^backbone\.bga\.detail_dwconv\.0\.', 'decode_head.bga.detail_dw.'),
    (r'^backbone\.bga\.detail_down\.0\.', 'decode_head.bga.detail_down.0.'),
    (r'^backbone\.bga\.semantic_conv\.0\.', 'decode_head.bga.semantic_conv.'),
    (r'^backbone\.bga\.semantic_dwconv\.0\.', 'decode_head.bga.semantic_dw.'),
    (r'^backbone\.bga\.conv\.', 'decode_head.bga.fuse.'),
    (r'^decode_head\.convs\.0\.', 'decode_head.seg_conv.'),
    (r'^decode_head\.conv_seg\.', 'decode_head.conv_seg.'),
    (r'^auxiliary_head\.(\d+)\.(convs\.\d+|conv_seg)\.', r'auxiliary_head.\1.\2.'),
]]


def convert_mmseg_bisenetv2(checkpoint: Mapping) -> Dict[str, Tensor]:
    """Map an mmseg ``EncoderDecoder`` + ``BiSeNetV2`` state dict to our keys.

    Args:
        checkpoint: the segmentor's state dict (``backbone.*``, ``decode_head.*``,
            optionally ``auxiliary_head.{i}.*``), or an mmengine checkpoint holding it under
            ``'state_dict'``; ``module.`` prefixes (DDP) are stripped.

    Returns:
        Ordered state dict for ``EncoderDecoder(backbone=BiSeNetV2, decode_head=BGAHead,
        auxiliary_head=[BoosterHead(num_convs=2), ...])``; the tensors are not copied.

    Raises:
        ConversionError: listing every key no rule maps, or when there is no ``backbone.bga``.
    """
    out: Dict[str, Tensor] = OrderedDict()
    unknown = []
    for key, value in unwrap_state_dict(checkpoint).items():
        for pattern, target in _RULES:
            new_key, hits = pattern.subn(target, key, count=1)
            if hits:
                out[new_key] = value
                break
        else:
            unknown.append(key)
    refuse_unknown(SOURCE, unknown, 'an mmseg BiSeNetV2 segmentor (BiSeNetV2 backbone with '
                   'its bga, FCNHead with num_convs=1 as decode head, FCNHead auxiliary heads)')
    if not any(key.startswith('decode_head.bga.') for key in out):
        raise ConversionError(f'{SOURCE}: no backbone.bga.* keys: this is not an '
                              'mmseg BiSeNetV2 segmentor checkpoint')
    return out


@register_source(SOURCE, "mmseg's bisenetv2_fcn segmentor checkpoints (1.x or 0.x)")
def convert_mmseg_bisenetv2_source(checkpoint: Mapping) -> Converted:
    """:func:`convert_mmseg_bisenetv2`, keeping the class names and palette of the meta."""
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), Mapping) else {}
    dataset_meta = dict(meta.get('dataset_meta') or {})
    for old, new in (('CLASSES', 'classes'), ('PALETTE', 'palette')):  # mmseg 0.x
        if old in meta:
            dataset_meta.setdefault(new, meta[old])
    return Converted(convert_mmseg_bisenetv2(checkpoint),
                     meta={'dataset_meta': dataset_meta} if dataset_meta else {})
