"""HRNet-Object-Detection (mmdetection v1) Faster R-CNN + HRNetV2p checkpoints -> our mmdet 3
config (``configs/mmdet/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od-weights.py``).

The source files are mmdetection v1 training checkpoints: ``{'meta': {'mmdet_version',
'config', 'CLASSES', ...}, 'state_dict': ...}`` (sometimes with ``optimizer``). What changes:

* ``backbone.*``: HRNet-Object-Detection's ``HighResolutionNet`` has the key layout of mmdet's
  ``HRNet`` and of ours (``conv1``, ``bn1``, ``layer1``, ``transition{1-3}``,
  ``stage{2-4}.{m}.branches`` / ``fuse_layers``): copied unchanged.
* ``neck.*``: two layouts of the same HRFPN are accepted. HRNet-Object-Detection's own code keeps
  plain convs (``reduction_conv.0``, ``fpn_conv.{i}``, or one ``fpn_conv`` shared by every level
  with ``share_conv=True``); mmdetection v1's HRFPN wraps them in ``ConvModule`` s
  (``reduction_conv.conv``, ``fpn_convs.{i}.conv``), which is also our neck's layout. A shared
  ``fpn_conv`` is copied to each of the ``num_outs`` levels (5 in their code).
* ``rpn_head.rpn_{conv,cls,reg}``: same names and the same channel order in mmdet 3 (anchors of
  one position ordered by ratio, 4 deltas per anchor). Only the sigmoid RPN (``rpn_cls`` has one
  output per anchor) is accepted: the softmax one orders background/foreground the other way.
* ``bbox_head.*`` -> ``roi_head.bbox_head.*`` (mmdet 3 keeps the box head in the RoI head).
  mmdetection v1 puts background FIRST (``fc_cls`` has ``C + 1`` rows, row 0 = background,
  row ``k + 1`` = class ``k``) and regresses a box for it too (``fc_reg`` has ``4 (C + 1)`` rows);
  mmdet 3 puts background LAST and regresses only the ``C`` classes. So ``fc_cls`` rows become
  ``[1, ..., C, 0]`` and ``fc_reg`` loses rows 0-3 (the background's deltas, never used at test
  time); a class-agnostic ``fc_reg`` (4 rows) is copied. These row changes are listed in the
  written meta (``row_changes``).

The class names of the source meta (``CLASSES``, COCO's 80 for the published models) are kept as
``meta['dataset_meta']['classes']``, and checked against ``fc_cls``.

Box convention: mmdetection v1 decodes boxes with the "+1 pixel" convention (widths
``x2 - x1 + 1``), anchors centred at ``(stride - 1) / 2``, RoIAlign over ``[x1, x2 + 1]``. The
weights do not change with that; the config sets mmdet 3's legacy anchor generator and box coder,
and the remaining differences are measured in that config's header.

Command line::

    python tools/model_converters/convert.py hrnet-od \\
        faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth \\
        checkpoints/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od.pth
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence

from torch import Tensor

from .keys import BN_LEAF
from .registry import ConversionError, Converted, register_source, refuse_unknown, unwrap_state_dict

SOURCE = 'hrnet-od'

#: COCO's 80 detection classes in mmdet's order (the published HRNet-Object-Detection models').
COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')

_CONV_OR_BN = rf'(0\.weight|1\.{BN_LEAF})'
#: Every key of an mmdet(-v1) HRNet backbone, without the ``backbone.`` prefix.
BACKBONE_KEY = re.compile(
    rf'^(conv[12]\.weight|bn[12]\.{BN_LEAF}'
    rf'|layer1\.\d+\.(conv[1-3]\.weight|bn[1-3]\.{BN_LEAF}|downsample\.{_CONV_OR_BN})'
    rf'|transition[1-3]\.\d+\.(\d+\.)?{_CONV_OR_BN}'
    rf'|stage[2-4]\.\d+\.branches\.\d+\.\d+\.(conv[1-3]\.weight|bn[1-3]\.{BN_LEAF}'
    rf'|downsample\.{_CONV_OR_BN})'
    rf'|stage[2-4]\.\d+\.fuse_layers\.\d+\.\d+\.(\d+\.)?{_CONV_OR_BN})$')

#: Neck keys (without ``neck.``) -> ours; ``None``: the shared fpn conv, copied to every level.
_NECK_RULES = [
    (re.compile(r'^reduction_conv\.(?:0|conv)\.(weight|bias)$'), r'reduction_conv.conv.\1'),
    (re.compile(r'^fpn_conv\.(\d+)\.(weight|bias)$'), r'fpn_convs.\1.conv.\2'),
    (re.compile(r'^fpn_convs\.(\d+)\.conv\.(weight|bias)$'), r'fpn_convs.\1.conv.\2'),
    (re.compile(r'^fpn_conv\.(weight|bias)$'), None),
]
RPN_KEY = re.compile(r'^rpn_(conv|cls|reg)\.(weight|bias)$')
BBOX_KEY = re.compile(r'^(shared_fcs\.\d+|fc_cls|fc_reg)\.(weight|bias)$')

EXPECTED = ('a Faster R-CNN with an HRNet backbone, an HRFPN neck, a sigmoid RPNHead and a '
            'SharedFCBBoxHead (backbone.*, neck.*, rpn_head.*, bbox_head.*)')


def _class_names(checkpoint: Mapping) -> Optional[Sequence[str]]:
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    classes = meta.get('CLASSES')
    if classes is None:
        classes = (meta.get('dataset_meta') or {}).get('classes')
    return tuple(classes) if classes is not None else None


def _rows(name: str, tensor: Tensor) -> int:
    if tensor.dim() not in (1, 2):
        raise ConversionError(f'{name} has shape {tuple(tensor.shape)}; a Linear layer was '
                              f'expected')
    return tensor.shape[0]


def _convert_bbox_head(head: Dict[str, Tensor], classes: Optional[Sequence[str]],
                       row_changes: Dict[str, str]) -> Dict[str, Tensor]:
    """fc_cls: background row 0 -> last; fc_reg: drop the background's 4 rows."""
    for needed in ('fc_cls.weight', 'fc_cls.bias', 'fc_reg.weight', 'fc_reg.bias'):
        if needed not in head:
            raise ConversionError(f'bbox_head.{needed} is missing: {EXPECTED} was expected')
    out = OrderedDict((k, v) for k, v in head.items() if k.startswith('shared_fcs.'))
    num_rows = _rows('bbox_head.fc_cls.weight', head['fc_cls.weight'])
    num_classes = num_rows - 1
    if num_classes < 1 or head['fc_cls.bias'].shape != (num_rows, ):
        raise ConversionError(f'bbox_head.fc_cls has shapes {tuple(head["fc_cls.weight"].shape)} '
                              f'/ {tuple(head["fc_cls.bias"].shape)}: mmdetection v1 keeps '
                              f'classes + 1 (background) rows')
    if classes is not None and len(classes) != num_classes:
        raise ConversionError(f'bbox_head.fc_cls has {num_rows} rows (background + '
                              f'{num_classes} classes) but the meta names {len(classes)} '
                              f'classes')
    order = list(range(1, num_rows)) + [0]
    out['fc_cls.weight'] = head['fc_cls.weight'][order]
    out['fc_cls.bias'] = head['fc_cls.bias'][order]
    row_changes['bbox_head.fc_cls'] = (
        f'rows reordered [1..{num_classes}, 0]: background moved from first (mmdet v1) to last '
        f'(mmdet 3); class k is row k')

    reg_rows = _rows('bbox_head.fc_reg.weight', head['fc_reg.weight'])
    if head['fc_reg.bias'].shape != (reg_rows, ):
        raise ConversionError(f'bbox_head.fc_reg.bias has shape {tuple(head["fc_reg.bias"].shape)}'
                              f', weight has {reg_rows} rows')
    if reg_rows == 4 * num_rows:      # class-specific: 4 deltas per class, background first
        out['fc_reg.weight'] = head['fc_reg.weight'][4:]
        out['fc_reg.bias'] = head['fc_reg.bias'][4:]
        row_changes['bbox_head.fc_reg'] = (
            'rows 0-3 (the background class\'s box deltas, unused at test time; mmdet 3 has '
            'none) removed; class k is rows 4k..4k+3')
    elif reg_rows == 4:               # class-agnostic
        out['fc_reg.weight'] = head['fc_reg.weight']
        out['fc_reg.bias'] = head['fc_reg.bias']
    else:
        raise ConversionError(f'bbox_head.fc_reg has {reg_rows} rows; expected 4 (class-agnostic) '
                              f'or 4 x {num_rows} = {4 * num_rows} (fc_cls has {num_rows} rows)')
    return out


def convert_hrnet_od(checkpoint: Mapping, num_outs: int = 5) -> Converted:
    """Map an HRNet-Object-Detection / mmdetection v1 Faster R-CNN checkpoint to our keys.

    Args:
        checkpoint: the mmdet v1 checkpoint (``{'meta', 'state_dict'}``) or its state dict;
            ``module.`` prefixes are stripped.
        num_outs: pyramid levels of the target neck; a shared ``fpn_conv`` (HRNet-Object-
            Detection's ``share_conv=True``) is copied to each of them.

    Returns:
        :class:`Converted` with our state dict (tensors not copied, except the reordered rows and
        shared-conv copies), no dropped keys (every source key has a counterpart) and meta:
        ``dataset_meta.classes``, ``row_changes``, the source's ``mmdet_version``.

    Raises:
        ConversionError: keys that belong to no part of a Faster R-CNN + HRNet + HRFPN, a missing
            part, a softmax RPN, or box-head shapes that do not fit mmdet v1's layout.
    """
    state = unwrap_state_dict(checkpoint)
    classes = _class_names(checkpoint)
    out: Dict[str, Tensor] = OrderedDict()
    head: Dict[str, Tensor] = OrderedDict()
    unknown: List[str] = []
    seen = set()
    for key, value in state.items():
        part, _, rest = key.partition('.')
        if part == 'backbone' and BACKBONE_KEY.match(rest):
            out[key] = value
        elif part == 'neck':
            for pattern, target in _NECK_RULES:
                match = pattern.match(rest)
                if match is None:
                    continue
                if target is None:
                    for level in range(num_outs):
                        out[f'neck.fpn_convs.{level}.conv.{match.group(1)}'] = value.clone()
                else:
                    out['neck.' + match.expand(target)] = value
                break
            else:
                unknown.append(key)
                continue
        elif part == 'rpn_head' and RPN_KEY.match(rest):
            out[key] = value
        elif part == 'bbox_head' and BBOX_KEY.match(rest):
            head[rest] = value
        else:
            unknown.append(key)
            continue
        seen.add(part)
    refuse_unknown(SOURCE, unknown, EXPECTED)
    missing = [p for p in ('backbone', 'neck', 'rpn_head', 'bbox_head') if p not in seen]
    if missing:
        raise ConversionError(f'no {", ".join(p + ".*" for p in missing)} keys: {EXPECTED} was '
                              f'expected')

    for layer in ('rpn_conv', 'rpn_cls', 'rpn_reg'):
        if f'rpn_head.{layer}.weight' not in out:
            raise ConversionError(f'rpn_head.{layer}.weight is missing: {EXPECTED} was expected')
    cls_out = out['rpn_head.rpn_cls.weight'].shape[0]
    reg_out = out['rpn_head.rpn_reg.weight'].shape[0]
    if reg_out % 4 or cls_out != reg_out // 4:
        raise ConversionError(
            f'rpn_head.rpn_cls has {cls_out} outputs for {reg_out // 4} anchors (rpn_reg has '
            f'{reg_out}): only the sigmoid RPN (one score per anchor) converts; a softmax RPN '
            f'(2 per anchor) orders background/foreground differently from mmdet 3')

    row_changes: Dict[str, str] = OrderedDict()
    for key, value in _convert_bbox_head(head, classes, row_changes).items():
        out[f'roi_head.bbox_head.{key}'] = value
    if 'neck.fpn_conv.weight' in state:
        row_changes['neck.fpn_conv'] = (f'one conv shared by every level (share_conv=True): '
                                        f'copied to fpn_convs.0..{num_outs - 1}')

    num_classes = out['roi_head.bbox_head.fc_cls.bias'].shape[0] - 1
    if classes is None and num_classes == len(COCO_CLASSES):
        classes = COCO_CLASSES   # the file names none: the published models are COCO's
    meta = {'row_changes': dict(row_changes)}
    if classes is not None:
        meta['dataset_meta'] = {'classes': tuple(classes)}
    src_meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    if isinstance(src_meta, Mapping) and src_meta.get('mmdet_version'):
        meta['source_mmdet_version'] = str(src_meta['mmdet_version'])
    return Converted(out, dropped={}, meta=meta)


@register_source(SOURCE, 'HRNet-Object-Detection / mmdetection v1 Faster R-CNN + HRNetV2p '
                 '(HRFPN) checkpoints, e.g. faster_rcnn_hrnetv2p_w48_1x (background class first)')
def convert_hrnet_od_source(checkpoint: Mapping, num_outs: int = 5) -> Converted:
    """:func:`convert_hrnet_od` (registered as ``hrnet-od``)."""
    return convert_hrnet_od(checkpoint, num_outs=num_outs)
