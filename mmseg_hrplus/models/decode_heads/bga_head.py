"""Bilateral Guided Aggregation (BiSeNetV2, Yu et al. 2021) followed by a segmentation head.

The aggregation merges a high-resolution "detail" map with a low-resolution "semantic" map,
each gating the other through a sigmoid at its own resolution (paper Fig. 6):

* detail, kept at its resolution: ``a = DW3x3-BN -> 1x1``;
* detail, brought down to the semantic resolution: ``b = 3x3 strided conv-BN -> avg-pool``;
* semantic, brought up to the detail resolution: ``c = up(3x3 conv-BN)``;
* semantic, kept at its resolution: ``d = DW3x3-BN -> 1x1``;
* ``out = 3x3 conv-BN-ReLU(a * sigmoid(c) + up(b * sigmoid(d)))``.

BiSeNetV2's own branches meet at 1/8 and 1/32 (ratio 4) with 128 channels each, where this is
exactly mmseg's ``BGALayer``. Other backbones (HRNet: 18 ch at 1/4 and 144 ch at 1/32) need
other ratios and widths: every path's first conv already maps its input width to
``bga_channels`` (the two inputs are projected to a common width without extra layers), and
the down path of ``b`` is sized from ``stride_ratio`` (see :class:`BilateralGuidedAggregation`).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch import Tensor

from mmseg_hrplus.models.utils import FeatureSpec, check_in_channels
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_bool, check_choice, check_int, check_ints


#: What the two entries of ``in_channels`` and ``in_index`` are.
PAIR = ('detail', 'semantic')


class BilateralGuidedAggregation(BaseModule):
    """The BGA layer for any channel counts and any integer stride ratio between the inputs.

    The down path of the detail map (``detail_down``) must shrink it by ``stride_ratio``.
    The paper (ratio 4) uses a stride-2 3x3 conv then a 3x3 stride-2 average pool; we keep
    the conv stride at 2 when the ratio is even (1 otherwise) and let ONE average pool of
    stride ``q = ratio / conv_stride``, kernel ``2q - 1`` and padding ``q - 1`` do the rest,
    which is the paper's pool for ratio 4 and, like every stride-2 layer of the backbones,
    rounds sizes up (``ceil(n / q)``), so the result lands on the semantic map's grid. Ratios
    1 and 2 need no pool. Should a backbone still round differently, ``b`` is resized to
    the semantic map's size.

    Args:
        detail_channels: channels of the detail (high-resolution) input.
        semantic_channels: channels of the semantic (low-resolution) input.
        out_channels: width of every path and of the output (``bga_channels``).
        stride_ratio: semantic stride / detail stride (4 for BiSeNetV2, 8 for HRNet 1/4-1/32).
        align_corners: of the bilinear upsampling.
        upsample_mode: how the two semantic-resolution maps (``c`` and the gated ``b``) are
            brought up to the detail size: ``'bilinear'`` (mmseg's BGALayer, the default) or
            ``'nearest'`` (CoinCheung/BiSeNet's BGALayer: nearest-neighbour x ratio).
        pointwise_bias: whether the 1x1 convs of the two depthwise-separable paths have a
            bias (True in mmseg's BGALayer, False in CoinCheung/BiSeNet's).
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.

    Shape:
        detail (N, Cd, H, W), semantic (N, Cs, ~H/ratio, ~W/ratio) -> (N, out_channels, H, W).
    """

    UPSAMPLE_MODES = ('bilinear', 'nearest')

    def __init__(self, detail_channels: int, semantic_channels: int, out_channels: int,
                 stride_ratio: int = 4, align_corners: bool = False,
                 upsample_mode: str = 'bilinear', pointwise_bias: bool = True,
                 conv_cfg: Optional[dict] = None, norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        self.stride_ratio = stride_ratio
        self.align_corners = align_corners
        self.upsample_mode = check_choice('upsample_mode', upsample_mode, self.UPSAMPLE_MODES)
        self.pointwise_bias = check_bool('pointwise_bias', pointwise_bias)

        def dw_separable(in_channels: int) -> DepthwiseSeparableConvModule:
            # BN after the depthwise conv only; the 1x1 has no norm and, by default, a bias.
            # mmcv passes `bias` to both convs: 'auto' keeps (depthwise with BN: no bias,
            # 1x1: bias); False also removes the 1x1's (the depthwise has none with a norm).
            return DepthwiseSeparableConvModule(
                in_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                dw_norm_cfg=norm_cfg, dw_act_cfg=None, pw_norm_cfg=None, pw_act_cfg=None,
                bias='auto' if pointwise_bias else False)

        def conv_bn(in_channels: int, stride: int = 1) -> ConvModule:
            return ConvModule(in_channels, out_channels, 3, stride=stride, padding=1, bias=False,
                              conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)

        conv_stride = 2 if stride_ratio % 2 == 0 else 1
        pool_stride = stride_ratio // conv_stride
        down: List[nn.Module] = [conv_bn(detail_channels, conv_stride)]
        if pool_stride > 1:
            down.append(nn.AvgPool2d(2 * pool_stride - 1, pool_stride, pool_stride - 1))
        self.detail_dw = dw_separable(detail_channels)
        self.detail_down = nn.Sequential(*down)
        self.semantic_conv = conv_bn(semantic_channels)
        self.semantic_dw = dw_separable(semantic_channels)
        self.fuse = ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)

    def _resize(self, x: Tensor, size: torch.Size) -> Tensor:
        return resize(x, size=size, mode='bilinear', align_corners=self.align_corners)

    def _upsample(self, x: Tensor, size: torch.Size) -> Tensor:
        """Semantic resolution -> detail resolution, in ``upsample_mode``."""
        if self.upsample_mode == 'nearest':
            # With sizes that are ratio x the semantic ones (inputs divisible by 32 for
            # BiSeNetV2) this is exactly nearest x ratio; otherwise the nearest source pixel.
            return F.interpolate(x, size=size, mode='nearest')
        return self._resize(x, size)

    def _check_grids(self, detail_size: Sequence[int], semantic_size: Sequence[int]) -> None:
        """Refuse maps whose sizes do not fit ``stride_ratio`` (a wrong ratio would otherwise
        train silently on resized maps); a side may differ by one pixel from
        ``ceil(detail / stride_ratio)``, as backbones round odd sizes up or down."""
        expected = [-(-int(n) // self.stride_ratio) for n in detail_size]
        if any(abs(int(got) - want) > 1 for got, want in zip(semantic_size, expected)):
            ratios = 'x'.join(f'{int(d) / max(int(s), 1):.3g}'
                              for d, s in zip(detail_size, semantic_size))
            raise ValueError(
                f'BGAHead: stride_ratio={self.stride_ratio} but the detail map is '
                f'{tuple(int(n) for n in detail_size)} and the semantic map '
                f'{tuple(int(n) for n in semantic_size)} (ratio {ratios}); set stride_ratio to '
                'the semantic stride / the detail stride of the backbone outputs in in_index')

    def forward(self, detail: Tensor, semantic: Tensor) -> Tensor:
        """Aggregate.

        Args:
            detail: (N, Cd, H, W).
            semantic: (N, Cs, h, w), about (H, W) / ``stride_ratio``.

        Returns:
            (N, out_channels, H, W).
        """
        if not torch.jit.is_tracing():
            self._check_grids(detail.shape[2:], semantic.shape[2:])
        high = self.detail_dw(detail)
        low = self.detail_down(detail)
        semantic_up = self._upsample(self.semantic_conv(semantic), high.shape[2:])
        semantic_gate = self.semantic_dw(semantic)
        # While tracing (ONNX export) always resize: an `if` on shapes would be frozen at the
        # example input, and a same-size bilinear resize is an exact copy.
        if torch.jit.is_tracing() or low.shape[2:] != semantic_gate.shape[2:]:
            low = self._resize(low, semantic_gate.shape[2:])
        fused_high = high * torch.sigmoid(semantic_up)
        fused_low = self._upsample(low * torch.sigmoid(semantic_gate), high.shape[2:])
        return self.fuse(fused_high + fused_low)


@MODELS.register_module()
class BGAHead(BaseDecodeHead):
    """Bilateral Guided Aggregation of two backbone maps + BiSeNetV2's segmentation head.

    ``inputs[in_index[0]]`` is the detail map, ``inputs[in_index[1]]`` the semantic map. After
    the aggregation (``bga_channels`` wide, at the detail resolution) the seg head runs a
    3x3 conv-BN-ReLU to ``channels``, dropout and the 1x1 classifier ``conv_seg`` of mmseg's
    ``BaseDecodeHead`` (no other layer; every parameter is used).

    Args:
        in_channels: (detail, semantic) channels.
        channels: width of the seg head's 3x3 conv (1024 in BiSeNetV2's main head).
        in_index: (detail, semantic) indices into the backbone outputs.
        bga_channels: width of the aggregation (128 in BiSeNetV2).
        stride_ratio: semantic stride / detail stride (4 for BiSeNetV2 (1/8, 1/32); 8 for
            HRNet's (1/4, 1/32)). :meth:`check_inputs` verifies it against a backbone.
        upsample_mode: ``'bilinear'`` (default, mmseg's BGA) or ``'nearest'``
            (CoinCheung/BiSeNet's BGA), see :class:`BilateralGuidedAggregation`.
        pointwise_bias: bias in the aggregation's two 1x1 convs (default True, mmseg's;
            CoinCheung/BiSeNet's have none).
        **kwargs: the rest of :class:`BaseDecodeHead`'s arguments (``num_classes``,
            ``dropout_ratio``, ``norm_cfg`` (default BN here, not None), ``align_corners``,
            ``loss_decode``, ...). ``input_transform`` is always ``'multiple_select'``.

    Shape:
        forward: backbone outputs -> logits (N, num_classes, H_detail, W_detail).

    Example:
        >>> import torch
        >>> from mmseg_hrplus.models.decode_heads.bga_head import BGAHead
        >>> head = BGAHead(in_channels=(18, 144), channels=32, in_index=(0, 3),
        ...                stride_ratio=8, num_classes=19).eval()
        >>> feats = [torch.rand(1, 18, 16, 16), None, None, torch.rand(1, 144, 2, 2)]
        >>> tuple(head(feats).shape)
        (1, 19, 16, 16)
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 128),
                 channels: int = 1024,
                 *,
                 in_index: Sequence[int] = (0, 1),
                 bga_channels: int = 128,
                 stride_ratio: int = 4,
                 upsample_mode: str = 'bilinear',
                 pointwise_bias: bool = True,
                 **kwargs) -> None:
        in_channels = check_ints('in_channels', in_channels, 2, 1, PAIR)
        in_index = check_ints('in_index', in_index, 2, None, PAIR)
        check_int('channels', channels)
        check_int('bga_channels', bga_channels)
        check_int('stride_ratio', stride_ratio)
        check_choice('upsample_mode', upsample_mode, BilateralGuidedAggregation.UPSAMPLE_MODES)
        check_bool('pointwise_bias', pointwise_bias)
        transform = kwargs.pop('input_transform', 'multiple_select')
        if transform != 'multiple_select':
            raise ValueError(f"input_transform must be 'multiple_select' (BGAHead reads two "
                             f'maps), got {transform!r}')
        # BN is part of the aggregation's design; BaseDecodeHead would default to no norm.
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        super().__init__(list(in_channels), channels, in_index=list(in_index),
                         input_transform='multiple_select', **kwargs)
        self.bga_channels = bga_channels
        self.stride_ratio = stride_ratio
        self.bga = BilateralGuidedAggregation(
            in_channels[0], in_channels[1], bga_channels, stride_ratio=stride_ratio,
            align_corners=self.align_corners, upsample_mode=upsample_mode,
            pointwise_bias=pointwise_bias, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        self.seg_conv = ConvModule(bga_channels, channels, 3, padding=1, conv_cfg=self.conv_cfg,
                                   norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)

    def check_inputs(self, specs: Sequence[FeatureSpec]) -> Tuple[FeatureSpec, ...]:
        """Check ``in_channels``, ``in_index`` and ``stride_ratio`` against a backbone.

        Args:
            specs: the backbone's ``out_specs``.

        Returns:
            The (detail, semantic) specs.

        Raises:
            ValueError: when an index is out of range, the channels differ or the two maps'
                stride ratio is not ``stride_ratio``.
        """
        detail, semantic = check_in_channels(type(self).__name__, self.in_channels,
                                             self.in_index, specs)
        if semantic.stride != detail.stride * self.stride_ratio:
            raise ValueError(
                f'{type(self).__name__}: stride_ratio={self.stride_ratio} but the maps at '
                f'in_index={self.in_index} have strides {detail.stride} and {semantic.stride} '
                f'(ratio {semantic.stride / detail.stride:g})')
        return detail, semantic

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Aggregate the two selected maps and classify.

        Args:
            inputs: backbone outputs; the two at ``in_index`` are (N, Cd, H, W) and
                (N, Cs, ~H/stride_ratio, ~W/stride_ratio).

        Returns:
            Logits (N, num_classes, H, W).
        """
        detail, semantic = self._transform_inputs(inputs)
        return self.cls_seg(self.seg_conv(self.bga(detail, semantic)))
