"""BiSeNetV2's two branches (Yu et al., "BiSeNet V2", IJCV 2021) as a backbone.

The network splits low-level detail from high-level semantics:

* the **detail branch** is VGG-like, wide and shallow (3x3 conv-BN-ReLU only, no residuals, as
  memory traffic matters more than FLOPs at 1/2-1/8 resolution) and ends at 1/8;
* the **semantic branch** is narrow and deep: a Stem (1/4), Gather-and-Expansion (GE) stages
  down to 1/32 and a Context Embedding (CE) block.

The Bilateral Guided Aggregation that merges the two is NOT part of this backbone: it lives in
:class:`mmseg_hrplus.models.decode_heads.bga_head.BGAHead`, so that the same head can also
aggregate the outputs of other backbones (HRNet, DilatedResNet) and this backbone can feed other
heads. mmseg's ``BiSeNetV2`` keeps the aggregation inside the backbone;
:mod:`mmseg_hrplus.converters.mmseg_bisenetv2` moves those weights into the head.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import (ConvModule, DepthwiseSeparableConvModule, build_activation_layer,
                      build_norm_layer)
from mmengine.model import BaseModule
from torch import Tensor

from mmseg_hrplus.models.utils import FeatureSpec
from mmseg_hrplus.models.utils.freezing import keep_norm_eval
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_choice, check_int, check_positive_ints


@dataclass(frozen=True)
class BiSeNetV2Arch:
    """Widths and depths of one BiSeNetV2 variant.

    Attributes:
        detail_channels: output channels of each detail stage (each stage halves the size).
        detail_depths: 3x3 convs per detail stage (the first one has stride 2).
        semantic_channels: Stem channels, then the output channels of each GE stage.
        semantic_depths: GE layers per GE stage (the first one has stride 2).
        expand_ratio: GE expansion factor of the depthwise convs.
    """

    detail_channels: Tuple[int, ...]
    detail_depths: Tuple[int, ...]
    semantic_channels: Tuple[int, ...]
    semantic_depths: Tuple[int, ...]
    expand_ratio: int


#: ``base`` is the paper's BiSeNetV2 (Table 1), which is also mmseg's. ``large`` is our reading
#: of the paper's BiSeNetV2-L, "width x2, depth x3": every channel count of BOTH branches
#: doubles (so the semantic/detail ratio lambda = 1/4 is kept and the two outputs still have
#: equal widths for the aggregation), and the number of GE layers of every semantic stage
#: triples. The detail branch keeps its depth: the paper designs it shallow on purpose (its
#: cost is at high resolution) and its depth is not what "deep and narrow" refers to.
ARCH_SETTINGS: Dict[str, BiSeNetV2Arch] = {
    'base': BiSeNetV2Arch(detail_channels=(64, 64, 128), detail_depths=(2, 3, 3),
                          semantic_channels=(16, 32, 64, 128), semantic_depths=(2, 2, 4),
                          expand_ratio=6),
    'large': BiSeNetV2Arch(detail_channels=(128, 128, 256), detail_depths=(2, 3, 3),
                           semantic_channels=(32, 64, 128, 256), semantic_depths=(6, 6, 12),
                           expand_ratio=6),
}


class StemBlock(BaseModule):
    """Stem of the semantic branch: two ways of halving, concatenated, then fused (to 1/4).

    ``conv_in`` (3x3 s2) gives 1/2; from there a conv path (1x1 to C/2, 3x3 s2 back to C) and
    a 3x3 s2 max-pool path each halve again; their concatenation is fused by a 3x3 conv.

    Args:
        in_channels: input channels (3 for an image).
        out_channels: C, the stem width (even, >= 2).
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.

    Shape:
        (N, in_channels, H, W) -> (N, C, ceil(H/4), ceil(W/4)).
    """

    def __init__(self, in_channels: int, out_channels: int, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        layer = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv_in = ConvModule(in_channels, out_channels, 3, stride=2, padding=1, **layer)
        self.conv_branch = nn.Sequential(
            ConvModule(out_channels, out_channels // 2, 1, **layer),
            ConvModule(out_channels // 2, out_channels, 3, stride=2, padding=1, **layer))
        self.pool_branch = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.fuse = ConvModule(2 * out_channels, out_channels, 3, padding=1, **layer)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        return self.fuse(torch.cat([self.conv_branch(x), self.pool_branch(x)], dim=1))


class GatherExpansion(BaseModule):
    """Gather-and-Expansion layer (paper Fig. 5 b/c), an inverted bottleneck with a 3x3 gather.

    ``conv_in`` (3x3 conv-BN-ReLU) gathers context, ``expand`` widens to
    ``in_channels * expand_ratio`` with depthwise 3x3 convs (stride 2: a strided depthwise conv
    without activation, then a second depthwise conv), ``project`` (1x1 + BN, no activation)
    maps to ``out_channels``; the shortcut (identity, or a strided depthwise-separable conv + BNs
    when ``stride == 2``) is added and a final activation applied. The activation after the
    last depthwise conv is not in the paper's figure but is in every public implementation.

    Args:
        in_channels: input channels.
        out_channels: output channels (must equal ``in_channels`` when ``stride == 1``).
        expand_ratio: width factor of the depthwise convs.
        stride: 1 or 2.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int = 6,
                 stride: int = 1, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride!r}')
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f'a stride-1 GE layer adds its input as is, so out_channels '
                             f'({out_channels}) must equal in_channels ({in_channels})')
        mid_channels = in_channels * expand_ratio
        norm = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.conv_in = ConvModule(in_channels, in_channels, 3, padding=1, act_cfg=act_cfg,
                                  **norm)
        if stride == 1:
            expand = [ConvModule(in_channels, mid_channels, 3, padding=1, groups=in_channels,
                                 act_cfg=act_cfg, **norm)]
        else:
            expand = [
                ConvModule(in_channels, mid_channels, 3, stride=2, padding=1,
                           groups=in_channels, act_cfg=None, **norm),
                ConvModule(mid_channels, mid_channels, 3, padding=1, groups=mid_channels,
                           act_cfg=act_cfg, **norm),
            ]
        self.expand = nn.Sequential(*expand)
        self.project = ConvModule(mid_channels, out_channels, 1, act_cfg=None, **norm)
        self.shortcut = None if stride == 1 else DepthwiseSeparableConvModule(
            in_channels, out_channels, 3, stride=2, padding=1, conv_cfg=conv_cfg,
            dw_norm_cfg=norm_cfg, dw_act_cfg=None, pw_norm_cfg=norm_cfg, pw_act_cfg=None)
        self.act = build_activation_layer(act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.expand(self.conv_in(x)))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.act(out + shortcut)


class ContextEmbedding(BaseModule):
    """Context Embedding block: add a globally pooled, BN-normalised 1x1 embedding, then 3x3.

    The paper draws a plain 3x3 conv at the end; like the public implementations we use
    conv-BN-ReLU there.

    Args:
        channels: input = output channels.
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.

    Shape:
        (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        layer = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.gap_norm = build_norm_layer(norm_cfg, channels)[1]
        self.conv_gap = ConvModule(channels, channels, 1, **layer)
        self.conv_out = ConvModule(channels, channels, 3, padding=1, **layer)

    def forward(self, x: Tensor) -> Tensor:
        context = self.conv_gap(self.gap_norm(F.adaptive_avg_pool2d(x, 1)))
        return self.conv_out(x + context)


@MODELS.register_module()
class BiSeNetV2(BaseModule):
    """BiSeNetV2 detail and semantic branches, returning every map a BiSeNetV2 head needs.

    ``forward`` returns a tuple, in this order (``base`` widths, input H x W)::

        index  name      what                                   channels  stride
        0      detail    detail branch output                   128       8
        1      semantic  semantic branch after Context Embed.   128       32
        2      stem      Stem output (booster tap)              16        4
        3      stage3    GE stage 3 output (booster tap)        32        8
        4      stage4    GE stage 4 output (booster tap)        64        16
        5      stage5    GE stage 5 output, before CE (booster) 128       32

    so ``BGAHead(in_index=(0, 1))`` aggregates and ``BoosterHead(in_index=2..5)`` boost.
    With other depths there are ``2 + len(semantic_channels)`` outputs in the same layout;
    :attr:`out_specs` and :attr:`out_names` describe them.

    The first four arguments are positional in the order of mmseg's ``BiSeNetV2``
    (``in_channels, detail_channels, semantic_channels, semantic_expansion_ratio``, the last
    one named ``expand_ratio`` here). mmseg's next ones (``bga_channels``, ``out_indices``,
    ``align_corners``) belong to the aggregation, which is in :class:`BGAHead` here, so the
    rest is keyword-only: a longer mmseg positional call fails instead of meaning something
    else.

    Args:
        in_channels: image channels.
        detail_channels: channels of each detail stage; the detail output stride is
            ``2 ** len(detail_channels)``.
        semantic_channels: Stem width (even), then one width per GE stage.
        expand_ratio: GE expansion ratio (mmseg's ``semantic_expansion_ratio``).
        arch: preset in :data:`ARCH_SETTINGS` (``'base'`` = the paper's BiSeNetV2 = mmseg's,
            ``'large'`` = BiSeNetV2-L as described there). The channel, depth and ratio
            arguments, when given, replace the preset's value.
        detail_depths: 3x3 convs per detail stage (>= 1).
        semantic_depths: GE layers per GE stage (>= 1; one entry per GE stage).
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs, used by every layer (mmseg's
            BiSeNetV2 ignores ``norm_cfg`` inside the backbone and always uses BN).
        norm_eval: keep norm layers in eval mode (frozen statistics) during training.
        init_cfg: defaults to the paper's from-scratch init: Kaiming-normal convs, BN weight 1.

    Example:
        >>> import torch
        >>> from mmseg_hrplus.models.backbones.bisenetv2 import BiSeNetV2
        >>> model = BiSeNetV2().eval()
        >>> for name, out in zip(model.out_names, model(torch.rand(1, 3, 64, 128))):
        ...     print(name, tuple(out.shape))
        detail (1, 128, 8, 16)
        semantic (1, 128, 2, 4)
        stem (1, 16, 16, 32)
        stage3 (1, 32, 8, 16)
        stage4 (1, 64, 4, 8)
        stage5 (1, 128, 2, 4)
    """

    def __init__(self,
                 in_channels: int = 3,
                 detail_channels: Optional[Sequence[int]] = None,
                 semantic_channels: Optional[Sequence[int]] = None,
                 expand_ratio: Optional[int] = None,
                 *,
                 arch: str = 'base',
                 detail_depths: Optional[Sequence[int]] = None,
                 semantic_depths: Optional[Sequence[int]] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU'),
                 norm_eval: bool = False,
                 init_cfg: Optional[object] = None) -> None:
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, str):
            raise ValueError(f'in_channels must be an int >= 1, got {in_channels!r}; the '
                             f'preset is chosen by keyword: BiSeNetV2(arch={in_channels!r})')
        check_int('in_channels', in_channels)
        check_choice('arch', arch, sorted(ARCH_SETTINGS))
        preset = ARCH_SETTINGS[arch]
        if not isinstance(norm_cfg, dict):
            raise ValueError(f'norm_cfg must be a dict (BiSeNetV2 needs normalisation layers), '
                             f'got {norm_cfg!r}')
        self.arch = arch
        self.detail_channels = check_positive_ints(
            'detail_channels', preset.detail_channels if detail_channels is None
            else detail_channels)
        self.detail_depths = check_positive_ints(
            'detail_depths', preset.detail_depths if detail_depths is None else detail_depths,
            length=len(self.detail_channels))
        self.semantic_channels = check_positive_ints(
            'semantic_channels', preset.semantic_channels if semantic_channels is None
            else semantic_channels)
        if len(self.semantic_channels) < 2 or self.semantic_channels[0] % 2:
            raise ValueError(f'semantic_channels must be an even Stem width followed by at least '
                             f'one GE stage width, got {self.semantic_channels!r}')
        self.semantic_depths = check_positive_ints(
            'semantic_depths', preset.semantic_depths if semantic_depths is None
            else semantic_depths, length=len(self.semantic_channels) - 1)
        self.expand_ratio = check_int(
            'expand_ratio', preset.expand_ratio if expand_ratio is None else expand_ratio)
        self.norm_eval = norm_eval
        layer = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)

        detail_stages = []
        prev = in_channels
        for channels, depth in zip(self.detail_channels, self.detail_depths):
            detail_stages.append(nn.Sequential(*(
                ConvModule(prev if i == 0 else channels, channels, 3, stride=2 if i == 0 else 1,
                           padding=1, **layer) for i in range(depth))))
            prev = channels
        self.detail_branch = nn.Sequential(*detail_stages)

        self.stem = StemBlock(in_channels, self.semantic_channels[0], **layer)
        semantic_stages = []
        prev = self.semantic_channels[0]
        for channels, depth in zip(self.semantic_channels[1:], self.semantic_depths):
            semantic_stages.append(nn.Sequential(*(
                GatherExpansion(prev if i == 0 else channels, channels, self.expand_ratio,
                                stride=2 if i == 0 else 1, **layer) for i in range(depth))))
            prev = channels
        self.semantic_stages = nn.ModuleList(semantic_stages)
        self.context = ContextEmbedding(prev, **layer)

    @property
    def out_names(self) -> Tuple[str, ...]:
        """Names of the returned maps, in order (``stageK`` follows the paper's numbering)."""
        stages = tuple(f'stage{k + 3}' for k in range(len(self.semantic_stages)))
        return ('detail', 'semantic', 'stem') + stages

    @property
    def out_specs(self) -> Tuple[FeatureSpec, ...]:
        """Channels and stride of every returned map, in order (see the class docstring)."""
        detail = FeatureSpec(self.detail_channels[-1], 2**len(self.detail_channels))
        taps = [FeatureSpec(c, 4 * 2**k) for k, c in enumerate(self.semantic_channels)]
        return (detail, FeatureSpec(taps[-1].channels, taps[-1].stride), *taps)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run both branches.

        Args:
            x: images, (N, in_channels, H, W).

        Returns:
            ``(detail, semantic, stem, stage3, ..., stageK)``; map i has shape
            (N, out_specs[i].channels, ~H/out_specs[i].stride, ~W/out_specs[i].stride), sizes
            rounded up at every stride-2 step.
        """
        detail = self.detail_branch(x)
        feat = self.stem(x)
        taps = [feat]
        for stage in self.semantic_stages:
            feat = stage(feat)
            taps.append(feat)
        return (detail, self.context(feat), *taps)

    def train(self, mode: bool = True) -> 'BiSeNetV2':
        """Set train/eval mode, keeping norm layers in eval mode when ``norm_eval``."""
        super().train(mode)
        if mode and self.norm_eval:
            keep_norm_eval(self)
        return self
