"""HRNetV2p: the feature pyramid that turns HRNet's parallel streams into detection levels.

All streams are resized to the first (highest-resolution) stream, concatenated (HRNetV2), reduced
to ``out_channels`` by a 1x1 conv, then pooled into ``num_outs`` levels whose strides double
(HRNetV2p); each level gets its own 3x3 conv. The parameter names are those of mmdet's ``HRFPN``
(``reduction_conv.*``, ``fpn_convs.{i}.*``), so its checkpoints load unchanged.

Differences from mmdet's ``HRFPN``:

- streams are resized to the exact size of stream 0 instead of by a fixed factor ``2**i``, so the
  neck works behind a backbone whose input sides are not multiples of 32 (odd stream sizes);
  on sizes where both agree the outputs are identical;
- ``norm_cfg`` is honoured (mmdet accepts and ignores it): with a norm, every conv gets the norm
  layer and drops its bias, exactly as ``mmcv.cnn.ConvModule`` does;
- invalid arguments raise ``ValueError`` at construction.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from torch import Tensor, nn

from mmseg_hrplus.models.utils.checkpointing import checkpoint_module
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_choice, check_int, check_positive_ints
from ..utils import FeatureSpec, check_in_channels

#: ``pooling_type`` -> the pooling that builds the coarser pyramid levels.
POOLINGS = {'AVG': F.avg_pool2d, 'MAX': F.max_pool2d}


@MODELS.register_module()
class HRNetV2pNeck(BaseModule):
    """HRNetV2p pyramid neck (mmdet ``HRFPN`` compatible).

    Args:
        in_channels: channels of every input stream, highest resolution first, e.g.
            ``[32, 64, 128, 256]`` for HRNet-W32.
        out_channels: channels of every pyramid level.
        num_outs: number of pyramid levels; level ``i`` has stride ``2**i`` relative to stream 0
            (strides 4, 8, ..., 64 behind HRNet with the default 5).
        pooling_type: ``'AVG'`` or ``'MAX'``, the pooling that builds levels 1..num_outs-1.
        conv_cfg: conv layer config for mmcv's ``build_conv_layer`` (None: ``nn.Conv2d``).
        norm_cfg: norm layer config, e.g. ``dict(type='BN')``; None (the mmdet setting) means
            no norm and convs with bias.
        with_cp: run the convs under activation checkpointing while training (saves memory,
            costs a second forward of those convs).
        stride: stride of the per-level 3x3 convs (mmdet's argument; 1 for HRNetV2p).
        init_cfg: mmengine init config; mmdet's Caffe2Xavier on the convs by default.

    Shapes:
        - inputs: ``len(in_channels)`` tensors; stream ``k`` is ``(N, in_channels[k], H_k, W_k)``.
          Any ``H_k, W_k``: every stream is resized to ``(H_0, W_0)``.
        - outputs: tuple of ``num_outs`` tensors; level ``i`` is
          ``(N, out_channels, floor(H_0 / 2**i), floor(W_0 / 2**i))`` (for ``stride=1``).

    Example:
        >>> import torch
        >>> neck = HRNetV2pNeck(in_channels=[18, 36, 72, 144], out_channels=64)
        >>> feats = [torch.rand(1, 18 * 2**k, 64 // 2**k, 64 // 2**k) for k in range(4)]
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 64, 64, 64), (1, 64, 32, 32), (1, 64, 16, 16), (1, 64, 8, 8), (1, 64, 4, 4)]
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int = 5,
                 pooling_type: str = 'AVG',
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 stride: int = 1,
                 init_cfg: Optional[dict] = dict(type='Caffe2Xavier', layer='Conv2d')) -> None:
        super().__init__(init_cfg)
        self.in_channels = list(check_positive_ints('in_channels', in_channels))
        check_choice('pooling_type', pooling_type, sorted(POOLINGS))
        self.out_channels = check_int('out_channels', out_channels)
        self.num_ins = len(self.in_channels)
        self.num_outs = check_int('num_outs', num_outs)
        self.pooling_type = pooling_type
        self.with_cp = with_cp
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.stride = check_int('stride', stride)
        self.pooling: Callable[..., Tensor] = POOLINGS[pooling_type]

        # No activation anywhere: the RPN/ROI heads read these levels like FPN outputs.
        self.reduction_conv = ConvModule(
            sum(self.in_channels), out_channels, kernel_size=1,
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, kernel_size=3, padding=1, stride=stride,
                       conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
            for _ in range(num_outs))

    def check_inputs(self, specs: Sequence[FeatureSpec]) -> Tuple[FeatureSpec, ...]:
        """Check ``in_channels`` against a backbone's ``out_specs`` and give our output specs.

        The neck reads the first ``len(in_channels)`` backbone outputs, in order.

        Args:
            specs: the backbone's ``out_specs``.

        Returns:
            One :class:`FeatureSpec` per pyramid level: ``out_channels`` at stride
            ``specs[0].stride * 2**i * self.stride``.

        Raises:
            ValueError: when the channels differ or the backbone has too few outputs.
        """
        selected = check_in_channels(type(self).__name__, self.in_channels,
                                     list(range(self.num_ins)), specs)
        base = selected[0].stride * self.stride
        return tuple(FeatureSpec(self.out_channels, base * 2**i) for i in range(self.num_outs))

    def _run(self, layer: nn.Module, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            return checkpoint_module(layer, x)
        return layer(x)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Build the pyramid.

        Args:
            inputs: ``len(in_channels)`` maps, stream ``k`` of shape ``(N, C_k, H_k, W_k)``.

        Returns:
            ``num_outs`` maps, level ``i`` of shape ``(N, out_channels, H_0 // 2**i, W_0 // 2**i)``.
        """
        if len(inputs) != self.num_ins:
            raise ValueError(f'{type(self).__name__} was built for {self.num_ins} input streams '
                             f'(in_channels={self.in_channels}), got {len(inputs)}')
        size = inputs[0].shape[2:]
        coarsest = 2**(self.num_outs - 1)
        if min(size) < coarsest:
            raise ValueError(f'stream 0 is {tuple(size)}: num_outs={self.num_outs} pools it by '
                             f'{coarsest}, so both sides must be at least {coarsest}')
        streams = [inputs[0]] + [
            resize(x, size=size, mode='bilinear', align_corners=False) for x in inputs[1:]]
        x = self._run(self.reduction_conv, torch.cat(streams, dim=1))
        levels = [x] + [self.pooling(x, kernel_size=2**i, stride=2**i)
                        for i in range(1, self.num_outs)]
        return tuple(self._run(conv, level) for conv, level in zip(self.fpn_convs, levels))
