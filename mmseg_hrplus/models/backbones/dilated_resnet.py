"""Dilated ResNet: the DeepLabv2 backbone (ResNet-50/101/152 at output stride 8, 16 or 32).

DeepLabv2 (Chen et al., TPAMI 2017) removes the downsampling of the last ResNet stages and
dilates their 3x3 convolutions instead, so the features keep 1/8 of the input resolution while
the receptive field grows as in the original network. The conversion from stride to dilation is
the one timm uses: walk the stages, and once the running stride has reached ``output_stride``,
every further stride is folded into the dilation rate.

The blocks and the state-dict layout are mmseg's ``ResNet`` (``stem='v1'``) and ``ResNetV1c``
(``stem='deep'``): their checkpoints load directly, with the same keys. torchvision's ResNet
checkpoints share the ``stem='v1'`` keys too and load by name
(``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')``), their ImageNet
classifier ``fc.*`` unused; the ``torchvision-resnet`` converter
(:func:`mmseg_hrplus.converters.torchvision_resnet.convert_torchvision_resnet`) writes the same
weights without it, for a strict load.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmseg.models.backbones.resnet import Bottleneck
from mmseg.models.utils import ResLayer
from torch import Tensor

from mmseg_hrplus.models.utils.checkpointing import run_blocks
from mmseg_hrplus.models.utils.feature_spec import FeatureSpec
from mmseg_hrplus.models.utils.freezing import freeze, keep_norm_eval
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_choice

# Bottleneck blocks per stage (res2..res5), He et al. 2016, Table 1.
STAGE_BLOCKS: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
OUTPUT_STRIDES: Tuple[int, ...] = (8, 16, 32)
STEMS: Tuple[str, ...] = ('v1', 'deep')
STYLES: Tuple[str, ...] = ('pytorch', 'caffe')
NUM_STAGES = 4
# Both stems end at 1/4 of the input: a stride-2 conv, then a stride-2 max-pool.
STEM_STRIDE = 4


def stage_strides_and_dilations(output_stride: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Per-stage stride and dilation that give a ResNet the requested output stride.

    Args:
        output_stride: 8, 16 or 32.

    Returns:
        ``(strides, dilations)``, one entry per stage. For example ``output_stride=8`` gives
        ``((1, 2, 1, 1), (1, 1, 2, 4))``: res4 and res5 keep 1/8 and dilate by 2 and 4.
    """
    strides, dilations = [], []
    net_stride, dilation = STEM_STRIDE, 1
    for stage in range(NUM_STAGES):
        stride = 1 if stage == 0 else 2
        if net_stride >= output_stride:
            # Keep the resolution; the lost stride grows the receptive field instead.
            dilation *= stride
            stride = 1
        else:
            net_stride *= stride
        strides.append(stride)
        dilations.append(dilation)
    return tuple(strides), tuple(dilations)


@MODELS.register_module()
class DilatedResNet(BaseModule):
    """ResNet with dilated late stages, as used by DeepLabv2.

    The first four arguments are positional in the order of mmseg's ``ResNet`` (``depth,
    in_channels, stem_channels, base_channels``); mmseg's next ones (``num_stages``,
    ``strides``, ``dilations``, ...) have no counterpart here, so everything after
    ``base_channels`` is keyword-only and a longer positional call fails instead of meaning
    something else. (mmseg's ``ResNetV1c`` takes keywords only.)

    Args:
        depth: 50, 101 or 152 (bottleneck ResNets).
        in_channels: input image channels.
        stem_channels: channels at the end of the stem.
        base_channels: bottleneck width of the first stage (doubled at every stage; the stage
            output has 4x as many channels).
        output_stride: ratio of input size to the size of the last feature map: 8 (DeepLabv2:
            res4 and res5 without stride, dilation 2 and 4), 16 (res5 dilated by 2) or 32 (the
            plain classification network).
        stem: ``'v1'``: 7x7 stride-2 conv + BN + ReLU (the original ResNet and the paper's
            network; mmseg ``ResNet``). ``'deep'``: three 3x3 convs with BN + ReLU, the first one
            stride 2 (mmseg ``ResNetV1c``). Both are followed by a 3x3 stride-2 max-pool.
        contract_dilation: halve the dilation of the first block of each dilated stage (mmseg's
            ``-d8`` configs do this). Off by default because DeepLabv2 dilates every block.
        multi_grid: per-block multipliers of the last stage's dilation (DeepLabv3's
            "Multi-Grid": block ``i`` uses ``dilation * multi_grid[i]``), one per block of the
            last stage, or ``None``. Note that mmseg's ``ResNet(multi_grid=...)`` takes the
            resulting rates instead of multipliers; the two agree when the last stage is not
            dilated (``output_stride=32``). Overrides ``contract_dilation`` for that stage.
        out_indices: stages whose outputs are returned (0 = res2 ... 3 = res5), in stage order.
        style: ``'pytorch'`` puts the stride on the 3x3 conv of a downsampling block (torchvision
            and mmseg weights); ``'caffe'`` on the first 1x1 conv (the original Caffe ResNet that
            DeepLabv2 fine-tuned). Irrelevant to stages that are dilated instead of strided.
        stem_pool_ceil_mode: round the stem max-pool's output size up instead of down (Caffe's
            pooling; the released DeepLabv2 models were trained with it). It changes the size,
            and so every feature, only when the stem conv's output side is even, e.g. a 240 or
            384 pixel input side (121 -> 61 either way, 120 -> 61 instead of 60).
        frozen_stages: -1 freezes nothing, 0 the stem, ``k`` the stem and stages 1..k
            (parameters stop getting gradients and their norm layers stay in eval mode).
        norm_eval: keep every BatchNorm in eval mode during training (frozen statistics, as
            in the Caffe DeepLabv2 models).
        with_cp: gradient checkpointing of every residual block (less memory, one more
            forward), with BN running statistics as without it (see
            :mod:`mmseg_hrplus.models.utils.checkpointing`).
        conv_cfg: mmcv conv config (``None``: ``nn.Conv2d``).
        norm_cfg: mmcv norm config, e.g. ``dict(type='SyncBN', requires_grad=True)``.
        zero_init_residual: with the default initialisation, set the last norm layer of every
            block to zero so that each block starts as the identity.
        init_cfg: mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint='checkpoints/resnet101_v1c.pth')``. ``None``
            uses Kaiming-normal convs and unit norm layers.

    Raises:
        ValueError: for an unsupported ``depth``, ``output_stride``, ``stem``, ``style``,
            ``out_indices``, ``frozen_stages`` or ``multi_grid``.

    Example:
        >>> import torch
        >>> net = DilatedResNet(depth=50, output_stride=8).eval()
        >>> [tuple(o.shape) for o in net(torch.rand(1, 3, 64, 64))]
        [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 8, 8), (1, 2048, 8, 8)]
        >>> net.out_specs[-1]
        FeatureSpec(channels=2048, stride=8)
    """

    def __init__(self,
                 depth: int = 101,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 *,
                 output_stride: int = 8,
                 stem: str = 'v1',
                 contract_dilation: bool = False,
                 multi_grid: Optional[Sequence[int]] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 style: str = 'pytorch',
                 stem_pool_ceil_mode: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 zero_init_residual: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        check_choice('depth', depth, tuple(STAGE_BLOCKS), owner='DilatedResNet')
        check_choice('output_stride', output_stride, OUTPUT_STRIDES, owner='DilatedResNet')
        check_choice('stem', stem, STEMS, owner='DilatedResNet')
        check_choice('style', style, STYLES, owner='DilatedResNet')
        out_indices = tuple(out_indices)
        if (not out_indices or len(set(out_indices)) != len(out_indices)
                or any(not 0 <= i < NUM_STAGES for i in out_indices)):
            raise ValueError(f'DilatedResNet: out_indices={out_indices} must be distinct stage '
                             f'indices in {tuple(range(NUM_STAGES))}')
        check_choice('frozen_stages', frozen_stages, tuple(range(-1, NUM_STAGES + 1)),
                     owner='DilatedResNet')
        stage_blocks = STAGE_BLOCKS[depth]
        if multi_grid is not None:
            multi_grid = tuple(multi_grid)
            if (len(multi_grid) != stage_blocks[-1]
                    or any(not isinstance(g, int) or g < 1 for g in multi_grid)):
                raise ValueError(f'DilatedResNet: multi_grid={multi_grid} must hold '
                                 f'{stage_blocks[-1]} positive ints (one per block of the last '
                                 f'stage of a ResNet-{depth}) or be None')

        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
            ]
            block_init_cfg = (dict(type='Constant', val=0, override=dict(name='norm3'))
                              if zero_init_residual else None)
        else:
            # A checkpoint (or the user's own rule) decides every weight.
            block_init_cfg = None
        super().__init__(init_cfg)

        self.depth = depth
        self.output_stride = output_stride
        self.stem_type = stem
        self.contract_dilation = contract_dilation
        self.multi_grid = multi_grid
        self.out_indices = tuple(sorted(out_indices))
        self.style = style
        self.stem_pool_ceil_mode = bool(stem_pool_ceil_mode)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.strides, self.dilations = stage_strides_and_dilations(output_stride)

        self._make_stem(in_channels, stem_channels)
        self.res_layers: List[str] = []
        inplanes = stem_channels
        for i, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            last = i == NUM_STAGES - 1
            layer = ResLayer(
                block=Bottleneck,
                inplanes=inplanes,
                planes=planes,
                num_blocks=num_blocks,
                stride=self.strides[i],
                dilation=self.dilations[i],
                style=style,
                # checkpointing is ours (run_blocks), which keeps BN statistics right
                with_cp=False,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                # ResLayer takes absolute rates; ours are multipliers of the stage's dilation.
                multi_grid=(tuple(self.dilations[i] * g for g in multi_grid)
                            if last and multi_grid is not None else None),
                contract_dilation=contract_dilation,
                init_cfg=block_init_cfg)
            inplanes = planes * Bottleneck.expansion
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
        self._freeze_stages()

    def _make_stem(self, in_channels: int, stem_channels: int) -> None:
        # Attribute names follow mmseg's ResNet so that its checkpoints load unchanged.
        if self.stem_type == 'deep':
            half = stem_channels // 2
            layers: List[nn.Module] = []
            for cin, cout, stride in ((in_channels, half, 2), (half, half, 1),
                                      (half, stem_channels, 1)):
                layers += [
                    build_conv_layer(self.conv_cfg, cin, cout, kernel_size=3, stride=stride,
                                     padding=1, bias=False),
                    build_norm_layer(self.norm_cfg, cout)[1],
                    nn.ReLU(inplace=True),
                ]
            self.stem = nn.Sequential(*layers)
        else:
            self.conv1 = build_conv_layer(self.conv_cfg, in_channels, stem_channels,
                                          kernel_size=7, stride=2, padding=3, bias=False)
            self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1,
                                    ceil_mode=self.stem_pool_ceil_mode)

    @property
    def norm1(self) -> nn.Module:
        """The norm layer of the ``'v1'`` stem (``bn1`` for BatchNorm)."""
        return getattr(self, self.norm1_name)

    def _stem_modules(self) -> List[nn.Module]:
        if self.stem_type == 'deep':
            return [self.stem]
        return [self.conv1, self.norm1]

    @property
    def out_specs(self) -> Tuple[FeatureSpec, ...]:
        """Channels and stride of every returned tensor, read from the built layers."""
        stem_convs = [m for mod in self._stem_modules() for m in mod.modules()
                      if isinstance(m, nn.Conv2d)]
        stride = self.maxpool.stride
        for conv in stem_convs:
            stride *= conv.stride[0]
        specs = []
        for i, name in enumerate(self.res_layers):
            layer = getattr(self, name)
            first, last = layer[0], layer[-1]
            stride *= first.conv1.stride[0] * first.conv2.stride[0]
            if i in self.out_indices:
                specs.append(FeatureSpec(last.conv3.out_channels, stride))
        return tuple(specs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = self._stem_modules() + [
            getattr(self, name) for name in self.res_layers[:self.frozen_stages]
        ]
        freeze(frozen)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the network.

        Args:
            x: images, shape ``(N, in_channels, H, W)``.

        Returns:
            One tensor per entry of ``out_indices``; stage ``i`` has shape
            ``(N, 256 * 2**i, ceil(H / s_i), ceil(W / s_i))`` with ``s_i`` its stride in
            :attr:`out_specs` (e.g. all of res3..res5 at 1/8 for ``output_stride=8``); with
            ``stem_pool_ceil_mode`` a side can be one larger (see that argument).
        """
        if self.stem_type == 'deep':
            x = self.stem(x)
        else:
            x = self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = run_blocks(getattr(self, name), x, self.with_cp)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'DilatedResNet':
        """Switch mode, keeping frozen stages and (with ``norm_eval``) all BN in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            keep_norm_eval(self)
        return self
