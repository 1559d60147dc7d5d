"""DeepLabv2's ASPP head: parallel atrous classifiers whose logits are summed.

DeepLabv2 (Chen et al., TPAMI 2017, ASPP-L) puts four 3x3 convolutions with dilation 6, 12, 18
and 24 side by side on the backbone features. Each one maps the features straight to class
logits (with bias, no normalisation, no activation) and the four logit maps are summed. The
VGG-16 variant of the paper gives each branch a small classifier of its own instead:
fc6 (3x3 atrous, ReLU, dropout) -> fc7 (1x1, ReLU, dropout) -> fc8 (1x1 to the classes).

This is not mmseg's ``ASPPHead``, which is DeepLabv3's (image pooling, a 1x1 branch, three
atrous branches with BN, concatenated and fused by a bottleneck conv before a classifier).

The head keeps mmseg's ``BaseDecodeHead`` contract (losses, ``predict``, ``ignore_index``,
pixel samplers, ``align_corners``). The base class always builds a 1x1 ``conv_seg`` classifier;
here the branches are the classifier, so ``conv_seg`` is removed: a parameter that never
receives a gradient would make DDP fail (or need ``find_unused_parameters``).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_conv_layer
from mmengine.model import BaseModule, ModuleList
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmseg_hrplus.models.utils.feature_spec import FeatureSpec, check_in_channels
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_choice, check_positive_ints

# Paper, Sec. 3.3: ASPP-L, the variant used for every reported ResNet-101 result.
ASPP_L_DILATIONS: Tuple[int, ...] = (6, 12, 18, 24)
# Caffe's dropout after fc6 and fc7 in the VGG-16 DeepLab models.
FC_BRANCH_DROPOUT = 0.5


class FCBranch(BaseModule):
    """One branch of the VGG-16 form: fc6 (3x3 atrous) -> fc7 (1x1) -> fc8 (1x1 to classes).

    Args:
        in_channels: input feature channels.
        branch_channels: width of fc6 and fc7 (1024 in the paper).
        out_channels: number of logit channels.
        dilation: atrous rate of fc6.
        dropout_ratio: element-wise dropout after fc6 and after fc7.
        conv_cfg: mmcv conv config.
        act_cfg: activation after fc6 and fc7.
    """

    def __init__(self, in_channels: int, branch_channels: int, out_channels: int, dilation: int,
                 dropout_ratio: float, conv_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU')) -> None:
        # fc6/fc7 feed ReLUs; fc8 produces logits and starts small, like the ASPP-L convs.
        super().__init__(init_cfg=[
            dict(type='Kaiming', override=[dict(name='fc6'), dict(name='fc7')]),
            dict(type='Normal', std=0.01, bias=0, override=dict(name='fc8')),
        ])
        self.fc6 = build_conv_layer(conv_cfg, in_channels, branch_channels, kernel_size=3,
                                    padding=dilation, dilation=dilation)
        self.act6 = build_activation_layer(act_cfg)
        self.drop6 = nn.Dropout(dropout_ratio)
        self.fc7 = build_conv_layer(conv_cfg, branch_channels, branch_channels, kernel_size=1)
        self.act7 = build_activation_layer(act_cfg)
        self.drop7 = nn.Dropout(dropout_ratio)
        self.fc8 = build_conv_layer(conv_cfg, branch_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, in_channels, H, W)`` -> logits ``(N, out_channels, H, W)``."""
        x = self.drop6(self.act6(self.fc6(x)))
        x = self.drop7(self.act7(self.fc7(x)))
        return self.fc8(x)


@MODELS.register_module(name=['DeepLabV2ASPPHead', 'ASPPHead'])
class DeepLabV2ASPPHead(BaseDecodeHead):
    """DeepLabv2 ASPP: one atrous classifier per rate, logits summed.

    As in mmseg's ``ASPPHead``, ``dilations`` is the only positional argument, so
    ``ASPPHead((6, 12, 18, 24), in_channels=..., num_classes=...)`` ports with the same
    meaning; everything else is keyword-only (as in mmseg's ``BaseDecodeHead``).

    Args:
        dilations: one branch per atrous rate; ``(6, 12, 18, 24)`` is the paper's ASPP-L,
            ``(2, 4, 8, 12)`` its ASPP-S.
        in_channels: channels of the selected backbone output (2048 for ResNet res5), or one
            entry per input with ``input_transform='resize_concat'``.
        num_classes: number of classes.
        branch_channels: ``None`` (default): each branch is a single 3x3 atrous conv from the
            features to the logits (the ResNet-101 model). An int: the VGG-16 form, where each
            branch is fc6 (3x3 atrous to ``branch_channels``) -> fc7 (1x1) -> fc8 (1x1 to the
            classes); the paper uses 1024.
        dropout_ratio: with ``branch_channels``, the element-wise dropout after fc6 and fc7
            (``None`` -> 0.5, as in the paper's Caffe models). Without it, an optional channel
            dropout applied to the features before the branches (``None`` -> 0, the paper has
            none).
        in_index: which backbone output(s) to read.
        input_transform: ``None`` (one input) or ``'resize_concat'``.
        conv_cfg: mmcv conv config for all branch convs.
        act_cfg: activation inside the VGG-form branches.
        init_cfg: the default is the paper's rule: every conv weight normal with std 0.01 and
            bias 0 (in the VGG form, fc6/fc7 are Kaiming-initialised since they feed ReLUs).
            ``None`` applies no rule at the head's level: the plain 3x3 branches keep PyTorch's
            default init, the VGG-form branches still apply their own rule.
        **kwargs: the rest of :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead`:
            ``out_channels``, ``threshold``, ``loss_decode``, ``ignore_index``, ``sampler``,
            ``align_corners``.

    Raises:
        ValueError: for empty or non-positive ``dilations``, a non-positive ``branch_channels``,
            ``dropout_ratio`` outside [0, 1), ``input_transform='multiple_select'``, a
            ``norm_cfg`` (the head has no normalisation layer) or a ``channels`` (it has no
            intermediate features).

    Example:
        >>> import torch
        >>> head = DeepLabV2ASPPHead(in_channels=2048, num_classes=19)
        >>> tuple(head([torch.rand(1, 2048, 16, 32)]).shape)
        (1, 19, 16, 32)
    """

    def __init__(self,
                 dilations: Sequence[int] = ASPP_L_DILATIONS,
                 *,
                 in_channels: Optional[Union[int, Sequence[int]]] = None,
                 num_classes: int,
                 branch_channels: Optional[int] = None,
                 dropout_ratio: Optional[float] = None,
                 in_index: Union[int, Sequence[int]] = -1,
                 input_transform: Optional[str] = None,
                 conv_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Normal', std=0.01, bias=0, layer='Conv2d'),
                 **kwargs) -> None:
        name = type(self).__name__
        if isinstance(dilations, int):
            raise ValueError(f'{name}: dilations={dilations!r} must be a non-empty sequence of '
                             f'positive ints, e.g. {ASPP_L_DILATIONS}; in_channels is '
                             f'keyword-only ({name}(in_channels={dilations!r}, ...))')
        if in_channels is None:
            raise ValueError(f'{name}: in_channels is required (a keyword argument: the channels '
                             'of the selected backbone output)')
        dilations = check_positive_ints('dilations', dilations, owner=name)
        if branch_channels is not None and (not isinstance(branch_channels, int)
                                            or branch_channels < 1):
            raise ValueError(f'{name}: branch_channels={branch_channels!r} must be None '
                             f'(one atrous conv per branch) or a positive int (fc6/fc7 width)')
        if dropout_ratio is None:
            dropout_ratio = FC_BRANCH_DROPOUT if branch_channels is not None else 0.0
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f'{name}: dropout_ratio={dropout_ratio} must be in [0, 1)')
        check_choice('input_transform', input_transform, (None, 'resize_concat'), owner=name)
        if 'channels' in kwargs:
            raise ValueError(f"{name}: channels={kwargs['channels']!r} cannot be used: "
                             f'DeepLabv2 ASPP maps the features straight to logits (mmseg\'s '
                             f'ASPPHead is DeepLabv3\'s); allowed: branch_channels for the '
                             f'VGG-16 form')
        if kwargs.get('norm_cfg') is not None:
            raise ValueError(f"{name}: norm_cfg={kwargs['norm_cfg']} cannot be used: "
                             f'DeepLabv2 ASPP has no normalisation layer; allowed value: None')
        # The branches are the classifier: the base class gets a 1-channel placeholder for the
        # conv_seg it insists on building (removed below) and no dropout of its own.
        super().__init__(
            in_channels,
            1,
            num_classes=num_classes,
            dropout_ratio=0.0,
            conv_cfg=conv_cfg,
            act_cfg=act_cfg,
            in_index=in_index,
            input_transform=input_transform,
            init_cfg=init_cfg,
            **kwargs)
        del self.conv_seg
        self._in_channels_arg = in_channels
        self.dilations = dilations
        self.branch_channels = branch_channels
        self.dropout_ratio = dropout_ratio
        # What the final logit convs read (BaseDecodeHead's meaning of ``channels``).
        self.channels = branch_channels if branch_channels is not None else self.in_channels

        if branch_channels is None:
            self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
            self.branches = ModuleList(
                build_conv_layer(conv_cfg, self.in_channels, self.out_channels, kernel_size=3,
                                 padding=d, dilation=d, bias=True) for d in dilations)
        else:
            self.dropout = None  # inside each branch
            # mmengine's ModuleList passes init_weights on to each branch's own init_cfg.
            self.branches = ModuleList(
                FCBranch(self.in_channels, branch_channels, self.out_channels, d, dropout_ratio,
                         conv_cfg=conv_cfg, act_cfg=act_cfg) for d in dilations)

    def check_inputs(self, specs: Sequence[FeatureSpec]) -> Tuple[FeatureSpec, ...]:
        """Check ``in_channels``/``in_index`` against a backbone's ``out_specs``.

        Returns:
            The selected specs. Raises ``ValueError`` naming both sides on a mismatch.
        """
        return check_in_channels(type(self).__name__, self._in_channels_arg, self.in_index, specs)

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Sum the branches' logits.

        Args:
            feat: features, ``(N, in_channels, H, W)``.

        Returns:
            Logits ``(N, out_channels, H, W)``: the atrous convs keep the spatial size.
        """
        if self.dropout is not None:
            feat = self.dropout(feat)
        logits = self.branches[0](feat)
        for branch in self.branches[1:]:
            logits = logits + branch(feat)
        return logits

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Backbone outputs -> logits ``(N, out_channels, H, W)`` at the selected output's size."""
        return self.cls_seg(self._transform_inputs(inputs))


#: The name configs used before DeepLabV2ASPPHead (registered as well, so they keep working).
ASPPHead = DeepLabV2ASPPHead
