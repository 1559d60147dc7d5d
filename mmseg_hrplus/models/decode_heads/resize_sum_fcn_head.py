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
``mmseg_hrplus.deploy.optimize_for_inference`` replaces an eligible ``FCNHead`` of a built model by
this head, loaded with the FCNHead's state dict.
"""
from typing import List

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
        problems = []
        if self.input_transform != 'resize_concat':
            problems.append(f"input_transform={self.input_transform!r} (allowed: "
                            f"'resize_concat')")
        if self.num_convs < 1:
            problems.append(f'num_convs={self.num_convs} (allowed: >= 1)')
        elif self.convs[0].conv.kernel_size != (1, 1):
            problems.append(f'kernel_size={self.kernel_size} (allowed: 1)')
        elif type(self.convs[0].conv) is not nn.Conv2d:
            # The per-stream form calls F.conv2d on the weight: a conv layer with its own
            # forward (ConvWS, ...) would be bypassed silently.
            problems.append(f'conv_cfg={self.conv_cfg!r}, a {type(self.convs[0].conv).__name__} '
                            'first conv (allowed: None, a plain nn.Conv2d)')
        elif self.convs[0].order != ('conv', 'norm', 'act'):
            problems.append(f'a first ConvModule with order={self.convs[0].order} (allowed: '
                            f"('conv', 'norm', 'act'))")
        if self.concat_input:
            problems.append('concat_input=True (allowed: False)')
        if problems:
            raise ValueError(f'ResizeSumFCNHead needs a 1x1 first conv over resized and '
                             f'concatenated streams; got {", ".join(problems)}. Use mmseg\'s '
                             f'FCNHead for other settings.')
        #: channels of each selected stream (mmseg keeps only their sum in ``in_channels``).
        self.stream_channels: List[int] = list(stream_channels)

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
