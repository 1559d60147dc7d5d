"""Check a built segmentor or detector: do its neck and heads fit what its backbone returns?

A head configured for another backbone (``in_channels`` from W48 on a W18 backbone, an
``in_index`` past the last output) otherwise fails deep inside the first ``forward`` with a
conv shape error, or, for ``resize_concat`` heads, not at all until training. Our backbones
declare their outputs in ``out_specs`` (see :mod:`.feature_spec`), so the mismatch can be
reported when the model is built, naming the head, its ``in_channels`` and the backbone's
outputs.

How each component is checked:

* a component with a ``check_inputs(specs)`` method (our heads and neck) checks itself; a neck's
  method returns the specs of its own outputs, which its heads are then checked against;
* any other mmseg ``BaseDecodeHead`` (``FCNHead``, ``UPerHead``, ...) from its ``in_index``,
  ``input_transform`` and ``in_channels`` (for ``resize_concat``, the base class keeps only
  the sum of the channels, so the sum is compared);
* cascade decode heads (mmseg's ``CascadeEncoderDecoder``, e.g. OCRNet's ``[FCNHead,
  OCRHead]``; ``decode_head`` is then an ``nn.ModuleList``) one by one, as ``decode_head[i]``,
  each against the backbone: every stage reads the backbone features through its own
  ``in_index``/``in_channels``; the previous stage's output, which later stages also take
  (OCRHead's soft object regions), is not a backbone feature and not part of ``in_channels``;
* anything else (a backbone without ``out_specs``, a neck without ``check_inputs``, mmdet's RPN
  and RoI heads, which read every neck level) is left alone: nothing is declared to compare.

:func:`check_model_contract` runs in ``mmseg_hrplus.engine.runner.build_runner`` (so in our
``tools/train.py`` and ``tools/test.py``) right after the Runner has built the model. mmseg's
and mmdet's own ``tools/train.py`` build the model inside ``Runner.__init__`` with no extension
point short of a model wrapper or a hook; call it yourself there, or on any model:
``check_model_contract(MODELS.build(cfg.model))``.
"""
from typing import Iterator, Sequence, Tuple

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from .feature_spec import FeatureSpec, check_in_channels, select_specs, spec_summary

HEAD_ATTRIBUTES = ('decode_head', 'auxiliary_head')


def _heads(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """``('decode_head', head)``, ``('auxiliary_head[1]', head)``, ...: every seg head."""
    for attr in HEAD_ATTRIBUTES:
        head = getattr(model, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.ModuleList):    # several auxiliary heads, cascade decoders
            for i, sub in enumerate(head):
                yield f'{attr}[{i}]', sub
        else:
            yield attr, head


def check_decode_head(head: BaseDecodeHead, specs: Sequence[FeatureSpec]) -> None:
    """Check any mmseg decode head against backbone (or neck) output specs.

    Args:
        head: a built ``BaseDecodeHead``; its ``in_channels`` is as the base class stores it
            (the sum of the inputs for ``input_transform='resize_concat'``).
        specs: what the head reads, e.g. a backbone's ``out_specs``.

    Raises:
        ValueError: naming the head class, its ``in_channels``/``in_index`` and ``specs``.
    """
    owner = type(head).__name__
    if head.input_transform != 'resize_concat':
        check_in_channels(owner, head.in_channels, head.in_index, specs)
        return
    indices = list(head.in_index)
    # Index range first (the channel check below is a sum, which cannot say which is wrong).
    got = [spec.channels for spec in select_specs(owner, indices, specs)]
    if sum(got) != head.in_channels:
        raise ValueError(
            f'{owner}: in_channels sum to {head.in_channels} (input_transform=\'resize_concat\', '
            f'in_index={indices}) but the backbone outputs it reads have channels {got} '
            f'(sum {sum(got)}); backbone outputs: {spec_summary(specs)}')


def check_model_contract(model: nn.Module) -> None:
    """Check the neck and every decode/auxiliary head of ``model`` against its backbone.

    Args:
        model: a built mmseg segmentor or mmdet detector, possibly wrapped (DDP). Models whose
            backbone has no ``out_specs`` are not checked.

    Raises:
        ValueError: ``'<where>: <Component>: in_channels=... does not match ...; backbone
            outputs: [0: 18ch @1/4, ...]'`` for the first component that does not fit, where
            ``<where>`` is the attribute path in the model (``model.decode_head``,
            ``model.decode_head[1]`` of a cascade, ``model.auxiliary_head[1]``,
            ``model.neck``).
    """
    if is_model_wrapper(model):
        model = model.module
    specs = getattr(getattr(model, 'backbone', None), 'out_specs', None)
    if specs is None:
        return
    specs = tuple(specs)
    neck = getattr(model, 'neck', None)
    if neck is not None:
        if not hasattr(neck, 'check_inputs'):
            return      # the heads read the neck's outputs, which are not declared
        specs = _checked('model.neck', lambda: neck.check_inputs(specs))
    for where, head in _heads(model):
        if hasattr(head, 'check_inputs'):
            _checked(f'model.{where}', lambda: head.check_inputs(specs))
        elif isinstance(head, BaseDecodeHead):
            _checked(f'model.{where}', lambda: check_decode_head(head, specs))


def _checked(where: str, check):
    try:
        return check()
    except ValueError as err:
        raise ValueError(f'{where}: {err}') from None
