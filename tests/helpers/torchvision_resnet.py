"""torchvision's ResNet checkpoint layout, written out from torchvision's published model.

torchvision is not installed (and nothing is downloaded), so tests make its files here:
Bottleneck blocks (conv1 1x1, bn1, conv2 3x3, bn2, conv3 1x1 to 4x the planes, bn3), the first
block of each stage with ``downsample.0`` (1x1 conv) + ``downsample.1`` (BN), a 7x7 stem
``conv1`` + ``bn1``, and the ImageNet classifier ``fc``. The widths are parameters so that tests
can write a file of the same keys at a small width.
"""
from collections import OrderedDict
from typing import Dict, Mapping, Sequence, Tuple

import torch

#: Bottleneck blocks per stage of torchvision's resnet50 / resnet101 / resnet152.
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
BN_BUFFERS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def torchvision_resnet_shapes(blocks: Sequence[int] = BLOCKS[101], stem_channels: int = 64,
                              base_channels: int = 64, num_classes: int = 1000
                              ) -> 'OrderedDict[str, Tuple[int, ...]]':
    """Key -> shape of a torchvision ResNet state dict, in torchvision's order.

    Args:
        blocks: Bottleneck blocks of stages 1-4.
        stem_channels: output channels of the 7x7 stem (64 in torchvision).
        base_channels: planes of stage 1 (64 in torchvision); stage i has ``base * 2**i``.
        num_classes: outputs of ``fc``.

    Returns:
        ``{'conv1.weight': (64, 3, 7, 7), 'bn1.weight': (64,), ..., 'bn1.num_batches_tracked':
        (), ..., 'fc.weight': (num_classes, 32 * base), 'fc.bias': (num_classes,)}``.
    """
    shapes: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        shapes[f'{name}.weight'] = (cout, cin, k, k)

    def bn(name: str, channels: int) -> None:
        for leaf in BN_BUFFERS:
            shapes[f'{name}.{leaf}'] = () if leaf == 'num_batches_tracked' else (channels, )

    conv('conv1', stem_channels, 3, 7)
    bn('bn1', stem_channels)
    inplanes = stem_channels
    for stage, count in enumerate(blocks):
        planes = base_channels * 2**stage
        for block in range(count):
            prefix = f'layer{stage + 1}.{block}'
            conv(f'{prefix}.conv1', planes, inplanes, 1)
            bn(f'{prefix}.bn1', planes)
            conv(f'{prefix}.conv2', planes, planes, 3)
            bn(f'{prefix}.bn2', planes)
            conv(f'{prefix}.conv3', planes * 4, planes, 1)
            bn(f'{prefix}.bn3', planes * 4)
            if block == 0:
                conv(f'{prefix}.downsample.0', planes * 4, inplanes, 1)
                bn(f'{prefix}.downsample.1', planes * 4)
            inplanes = planes * 4
    shapes['fc.weight'] = (num_classes, inplanes)
    shapes['fc.bias'] = (num_classes, )
    return shapes


def random_state_dict(shapes: Mapping[str, Tuple[int, ...]], seed: int = 0
                      ) -> Dict[str, torch.Tensor]:
    """Random tensors of ``shapes`` at the scales of trained weights, so that a deep network
    built from them stays finite: conv/linear weights ``N(0, 1/fan_in)``, norm scales in
    [0.1, 0.3], biases and means ``N(0, 0.01)``, variances in [0.5, 1.5];
    ``num_batches_tracked`` = 7."""
    gen = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith('.weight') and len(shape) == 1:
            state[key] = torch.rand(shape, generator=gen) * 0.2 + 0.1
        elif key.endswith('.weight'):
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            state[key] = torch.randn(shape, generator=gen) / fan_in**0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


def torchvision_resnet_state_dict(blocks: Sequence[int] = BLOCKS[50], num_classes: int = 1000,
                                  seed: int = 0, **widths: int) -> Dict[str, torch.Tensor]:
    """A random torchvision ResNet state dict (see :func:`torchvision_resnet_shapes`)."""
    return random_state_dict(torchvision_resnet_shapes(blocks, num_classes=num_classes, **widths),
                             seed)
