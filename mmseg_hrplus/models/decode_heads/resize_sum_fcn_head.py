"""The HRNetV2 FCN head with its first 1x1 conv applied per stream before upsampling.

mmseg's ``FCNHead`` with ``input_transform='resize_concat'`` upsamples every stream to the
first one's size, concatenates them and applies a 1x1 conv. A 1x1 conv mixes channels pixel by
pixel and bilinear resizing is linear per channel with weights summing to one, so

    conv1x1(concat_j resize(x_j)) = sum_j resize(conv1x1_j(x_j)) (+ the bias once)

where ``conv1x1_j`` uses the input-channel slice ``j`` of the same weight. The right side
runs each slice at its stream's own resolution: for HRNetV2-W48 at a 512x512 crop the first
conv costs 2.1 instead of 17 GMAC per image, in training (forward and both backward products)
as in inference. Parameters and state-dict keys are ``FCNHead``'s, so mmseg's ``fcn_hr*``
checkpoints load unchanged and the outputs equal ``FCNHead``'s up to float rounding.
The head owns the test of which ``FCNHead`` it can replace (:meth:`ResizeSumFCNHead.can_replace`)
and the replacement (:meth:`ResizeSumFCNHead.from_fcn_head`, loaded with the FCNHead's state
dict); ``mmseg_hrplus.deploy.optimize_for_inference`` applies them to a built model.
"""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads import FCNHead
from torch import Tensor

from mmseg_hrplus.registry import MODELS

from ..utils.resize_sum import add_resized


@MODELS.register_module()
class ResizeSumFCNHead(FCNHead):
    """``FCNHead`` for ``input_transform='resize_concat'`` with a 1x1 first conv, computed as
    a sum of per-stream 1x1 convs, each upsampled (see the module notes).

    Args: those of mmseg's ``FCNHead``; ``input_transform`` must be ``'resize_concat'``,
    ``kernel_size`` 1, ``num_convs`` >= 1, ``concat_input`` False and no ``conv_cfg`` (the
    first conv must be a plain ``nn.Conv2d``).

    Shapes: inputs a list of ``(N, C_j, H_j, W_j)`` (``C_j = in_channels[j]`` for the selected
    ``in_index``); output logits ``(N, num_classes, H_0, W_0)``.
    """

    def __init__(self, **kwargs) -> None:
        stream_channels = kwargs.get('in_channels')
        super().__init__(**kwargs)
        problems = self.replacement_problems(self)
        if problems:
            raise ValueError(f'ResizeSumFCNHead needs a 1x1 first conv over resized and '
                             f'concatenated streams; got {", ".join(problems)}. Use mmseg\'s '
                             f'FCNHead for other settings.')
        #: channels of each selected stream (mmseg keeps only their sum in ``in_channels``).
        self.stream_channels: List[int] = list(stream_channels)

    @staticmethod
    def replacement_problems(head: FCNHead) -> List[str]:
        """What keeps an ``FCNHead``'s settings from being computed as a resize-sum (empty when
        nothing does): ``input_transform='resize_concat'``, at least one conv, a plain
        ``nn.Conv2d`` 1x1 stride-1 ungrouped unpadded first conv in a ConvModule of order
        ``('conv', 'norm', 'act')``, and ``concat_input=False``."""
        problems = []
        if head.input_transform != 'resize_concat':
            problems.append(f"input_transform={head.input_transform!r} (allowed: "
                            f"'resize_concat')")
        if head.num_convs < 1:
            problems.append(f'num_convs={head.num_convs} (allowed: >= 1)')
        else:
            first = head.convs[0]
            conv = first.conv
            if (conv.kernel_size, conv.stride, conv.padding, conv.groups) != (
                    (1, 1), (1, 1), (0, 0), 1):
                # (FCNHead's 1x1 convs always have stride 1, no padding and one group)
                problems.append(f'kernel_size={head.kernel_size} (allowed: 1)')
            elif type(conv) is not nn.Conv2d:
                # The per-stream form calls F.conv2d on the weight: a conv layer with its own
                # forward (ConvWS, ...) would be bypassed silently.
                problems.append(f'conv_cfg={head.conv_cfg!r}, a {type(conv).__name__} first conv '
                                '(allowed: None, a plain nn.Conv2d)')
            elif first.order != ('conv', 'norm', 'act'):
                problems.append(f'a first ConvModule with order={first.order} (allowed: '
                                f"('conv', 'norm', 'act'))")
        if head.concat_input:
            problems.append('concat_input=True (allowed: False)')
        return problems

    @classmethod
    def can_replace(cls, head: nn.Module) -> bool:
        """The one test of which heads this head computes with the same weights: an mmseg
        ``FCNHead`` (exactly that class) with no :meth:`replacement_problems`."""
        return type(head) is FCNHead and not cls.replacement_problems(head)

    @classmethod
    def from_fcn_head(cls, head: FCNHead, stream_channels: Sequence[int]) -> 'ResizeSumFCNHead':
        """A :class:`ResizeSumFCNHead` with the settings of ``head`` (see :meth:`can_replace`)
        and its state dict (same keys, loaded strictly): same outputs up to float rounding, on
        ``head``'s device and dtype, in ``head``'s train/eval mode.

        Args:
            head: the mmseg ``FCNHead`` to replace (left unchanged).
            stream_channels: channels of the streams ``head.in_index`` selects, in order; they
                must sum to ``head.in_channels``.

        Raises:
            ValueError: ``head`` is not replaceable, or ``stream_channels`` do not sum to its
                ``in_channels``.
        """
        if not cls.can_replace(head):
            problems = (cls.replacement_problems(head) if isinstance(head, FCNHead)
                        else [f'a {type(head).__name__}'])
            raise ValueError(f'factorize_head needs an mmseg FCNHead with input_transform='
                             f'\'resize_concat\', a plain 1x1 first conv and concat_input=False, '
                             f'got {type(head).__name__} with input_transform='
                             f'{getattr(head, "input_transform", None)!r} '
                             f'({", ".join(problems)})')
        stream_channels = [int(c) for c in stream_channels]
        if sum(stream_channels) != head.in_channels:
            raise ValueError(f'stream_channels={stream_channels} sum to {sum(stream_channels)}, '
                             f'the head has in_channels={head.in_channels}')
        new = cls(
            in_channels=stream_channels, channels=head.channels, num_convs=head.num_convs,
            kernel_size=head.kernel_size, concat_input=head.concat_input,
            dilation=head.convs[-1].conv.dilation[0], in_index=list(head.in_index),
            input_transform=head.input_transform, num_classes=head.num_classes,
            out_channels=head.out_channels, threshold=head.threshold,
            dropout_ratio=head.dropout_ratio, conv_cfg=head.conv_cfg, norm_cfg=head.norm_cfg,
            act_cfg=head.act_cfg, ignore_index=head.ignore_index,
            align_corners=head.align_corners, loss_decode=[], init_cfg=None)
        # losses and sampler are built modules already: shared, not rebuilt from configs
        new.loss_decode = head.loss_decode
        new.sampler = head.sampler
        weight = head.conv_seg.weight
        new.to(device=weight.device, dtype=weight.dtype)
        new.load_state_dict(head.state_dict(), strict=True)
        new.requires_grad_(weight.requires_grad)
        return new.train(head.training)

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        xs = [inputs[i] for i in self.in_index]
        # (A trace, e.g. an ONNX export, would freeze this check: it is skipped there.)
        if not torch.jit.is_tracing():
            channels = [x.shape[1] for x in xs]
            if channels != self.stream_channels:
                raise ValueError(f'ResizeSumFCNHead expects streams of {self.stream_channels} '
                                 f'channels (in_channels), got {channels}')
        first = self.convs[0]
        weights = first.conv.weight.split(self.stream_channels, dim=1)
        y = add_resized(F.conv2d(xs[0], weights[0], first.conv.bias),
                        (F.conv2d(x, weight) for x, weight in zip(xs[1:], weights[1:])),
                        self.align_corners)
        if first.with_norm:
            y = first.norm(y)
        if first.with_activation:
            y = first.activate(y)
        return self.convs[1:](y)
