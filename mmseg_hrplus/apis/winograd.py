"""Inference-time switch of a built model's wide 3x3 convs to Winograd convolution
(:class:`mmseg_hrplus.models.layers.WinogradConv2d`; its module notes give the maths, the
rounding and where it pays off)."""
import torch.nn as nn

from mmseg_hrplus.models.layers.winograd import (DEFAULT_MIN_CHANNELS, WinogradConv2d,
                                                 check_tile, has_winograd_shape)


def is_winograd_eligible(conv: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` of the shape Winograd computes (:func:`has_winograd_shape`)."""
    return type(conv) is nn.Conv2d and has_winograd_shape(conv)


def winograd_convs(model: nn.Module, min_channels: int = DEFAULT_MIN_CHANNELS,
                   tile: int = 4) -> int:
    """Replace, in place, every eligible conv (:func:`is_winograd_eligible`) of ``model`` with
    at least ``min_channels`` input and output channels by a :class:`WinogradConv2d` sharing
    its parameters. Returns the number replaced."""
    check_tile(tile)
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if is_winograd_eligible(child) and child.in_channels >= min_channels
               and child.out_channels >= min_channels]
    for parent, name, conv in targets:
        setattr(parent, name, WinogradConv2d.from_conv(conv, tile, min_channels))
    return len(targets)
