"""Winograd convolution for 3x3, stride-1 convs at inference: the same function as
``F.conv2d`` in exact arithmetic, with fewer multiplications.

Why: with BN folded and channels_last, HRNet-W48's 3x3 residual convs already run near this
CPU's peak FMA rate, so only doing fewer multiply-adds makes them faster. Winograd's minimal
filtering algorithm F(m x m, 3 x 3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016) computes an ``m x m`` output tile from an ``(m+2) x (m+2)`` input tile with
``(m+2)^2`` multiplications per input/output channel pair instead of ``9 m^2``:

    Y = A^T [ (G g G^T) * (B^T d B) ] A     (``*`` elementwise, summed over input channels)

``g`` is the 3x3 filter, ``d`` an input tile, ``B``, ``G``, ``A`` fixed matrices. Summed over
input channels the elementwise product becomes ``(m+2)^2`` independent matrix products
``[tiles x C_in] @ [C_in x C_out]`` (one ``bmm``), which is where the time goes; the input and
output transforms are small matrix products along the tile axes.

* ``tile=4``: F(4x4, 3x3), 2.25 multiplications per output instead of 9 (4x fewer);
  ``tile=2``: F(2x2, 3x3), 4 instead of 9. The results differ from direct convolution only by
  float rounding; F(4x4) rounds more (its transform has entries up to 8), about 4e-5 absolute
  per conv on unit-scale data vs 7e-6 for F(2x2), measured here.
* The transforms cost memory traffic proportional to the channels while the products cost
  channels squared, so Winograd pays off on wide, low-resolution streams: on this project's
  2-core AVX2 CPU, F(4x4) beat oneDNN's direct conv from 96 channels up (1.4x at 96, 1.7x at
  192, 1.8x at 384; slower at 48), hence ``min_channels`` in :func:`winograd_convs`.

Inference only: the module holds the transformed filter (``requires_grad=False``), not the
3x3 weight, so training it would not train the original conv.
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn
from torch import Tensor

#: (B^T, G, A^T) of F(m x m, 3 x 3) for the supported output tile sizes m (interpolation
#: points 0, +-1 for m=2 and 0, +-1, +-2 for m=4, plus the point at infinity).
_TRANSFORMS: Dict[int, Tuple[list, list, list]] = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}
TILE_CHOICES = tuple(_TRANSFORMS)


def is_winograd_eligible(conv: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` with a 3x3 kernel, stride 1, padding 1, dilation 1, groups 1 and
    zero padding mode."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == 'zeros')


class WinogradConv2d(nn.Module):
    """A 3x3 stride-1 padding-1 convolution computed by Winograd's F(tile x tile, 3x3).

    Build it with :meth:`from_conv`. Shapes: input ``(N, C_in, H, W)`` (any memory format,
    any ``H, W >= 1``); output ``(N, C_out, H, W)`` in channels_last memory format, equal to
    ``conv(x)`` up to float rounding.
    """

    def __init__(self, weight: Tensor, bias: Tensor, tile: int = 4) -> None:
        super().__init__()
        if tile not in _TRANSFORMS:
            raise ValueError(f'tile={tile!r} is not supported; allowed values: '
                             f'{", ".join(map(str, TILE_CHOICES))}')
        if weight.dim() != 4 or weight.shape[2:] != (3, 3):
            raise ValueError(f'weight must be (C_out, C_in, 3, 3), got {tuple(weight.shape)}')
        b_t, g, a_t = (torch.tensor(m, dtype=torch.float64) for m in _TRANSFORMS[tile])
        self.tile = tile
        self.in_channels, self.out_channels = weight.shape[1], weight.shape[0]
        size = tile + 2
        # U[i*size + j] = (G g G^T)[i, j] as a (C_in, C_out) matrix, computed in float64.
        filters = torch.einsum('ik,ockl,jl->ijco', g, weight.detach().double(), g)
        self.register_buffer('filters', filters.reshape(size * size, self.in_channels,
                                                        self.out_channels)
                             .to(weight.dtype).contiguous())
        self.register_buffer('bias', bias.detach().clone())
        self.register_buffer('input_transform', b_t.to(weight.dtype))
        self.register_buffer('output_transform', a_t.to(weight.dtype))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, tile: int = 4) -> 'WinogradConv2d':
        """The Winograd form of an eligible conv (see :func:`is_winograd_eligible`)."""
        if not is_winograd_eligible(conv):
            raise ValueError(f'WinogradConv2d needs a 3x3 nn.Conv2d with stride 1, padding 1, '
                             f'dilation 1, groups 1 and zero padding, got {conv!r}')
        bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        return cls(conv.weight, bias, tile).to(conv.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f'WinogradConv2d expects {self.in_channels} input channels, got '
                             f'{c} (input shape {tuple(x.shape)})')
        m, size = self.tile, self.tile + 2
        rows, cols = -(-h // m), -(-w // m)
        # Zero-padded NHWC copy: 1 pixel of conv padding, plus enough to fill the last tiles.
        padded = x.new_zeros(n, m * rows + 2, m * cols + 2, c)
        padded[:, 1:h + 1, 1:w + 1].copy_(x.permute(0, 2, 3, 1))
        s_n, s_h, s_w, s_c = padded.stride()
        # Overlapping (size x size) input tiles at stride m: (size, size, N*rows*cols*C).
        tiles = padded.as_strided((size, size, n, rows, cols, c),
                                  (s_h, s_w, s_n, m * s_h, m * s_w, s_c)).reshape(size, -1)
        b_t = self.input_transform
        # B^T d B: along the tile rows (one mm), then the tile columns (a batched mm).
        v = torch.matmul(b_t, torch.mm(b_t, tiles).view(size, size, -1))
        products = torch.bmm(v.view(size * size, n * rows * cols, c), self.filters)
        a_t = self.output_transform
        y = torch.matmul(a_t, torch.mm(a_t, products.view(size, -1)).view(m, size, -1))
        # y: (m, m, N, rows, cols, C_out) -> NHWC (N, rows, m, cols, m, C_out), plus bias.
        out = x.new_empty(n, rows, m, cols, m, self.out_channels)
        torch.add(y.view(m, m, n, rows, cols, -1).permute(2, 3, 0, 4, 1, 5), self.bias,
                  out=out)
        out = out.view(n, m * rows, m * cols, -1)[:, :h, :w]
        if m * rows != h or m * cols != w:
            out = out.contiguous()
        return out.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), '
                f'tile={self.tile}')


def winograd_convs(model: nn.Module, min_channels: int = 96, tile: int = 4) -> int:
    """Replace, in place, every eligible conv (:func:`is_winograd_eligible`) of ``model`` with
    at least ``min_channels`` input and output channels by a :class:`WinogradConv2d`.
    Returns the number replaced."""
    if tile not in _TRANSFORMS:
        raise ValueError(f'tile={tile!r} is not supported; allowed values: '
                         f'{", ".join(map(str, TILE_CHOICES))}')
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if is_winograd_eligible(child) and child.in_channels >= min_channels
               and child.out_channels >= min_channels]
    for parent, name, conv in targets:
        setattr(parent, name, WinogradConv2d.from_conv(conv, tile))
    return len(targets)

