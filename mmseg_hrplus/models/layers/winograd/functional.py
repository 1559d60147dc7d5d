"""Winograd F(m x m, 3 x 3) as functions: the transforms, the tiling of a feature map, and the
autograd function whose backward is the adjoint of the same linear maps (see the package notes
in :mod:`mmseg_hrplus.models.layers.winograd`)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg_hrplus.models.utils.memory_format import is_channels_last
from mmseg_hrplus.utils.validation import check_choice

#: (B^T, G, A^T) of F(m x m, 3 x 3) per output tile size m (interpolation points 0, +-1 for
#: m=2 and 0, +-1, +-2 for m=4, plus the point at infinity).
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
_MATRICES: Dict[Tuple[int, torch.dtype, torch.device], Tuple[Tensor, Tensor, Tensor]] = {}


def check_tile(tile: int) -> int:
    """``tile`` if F(tile x tile, 3x3) is implemented (:data:`TILE_CHOICES`)."""
    return check_choice('tile', tile, TILE_CHOICES)


def _matrices(tile: int, like: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """(B^T, G, A^T) of ``tile`` in ``like``'s dtype and device (cached)."""
    key = (tile, like.dtype, like.device)
    if key not in _MATRICES:
        _MATRICES[key] = tuple(torch.tensor(m, dtype=torch.float64).to(like)
                               for m in _TRANSFORMS[tile])
    return _MATRICES[key]


def _sandwich(left: Tensor, x: Tensor, right_t: Tensor) -> Tensor:
    """``left @ X @ right_t^T`` for every ``X = x[:, :, k]``: ``x`` is ``(a, b, K)``, the
    result ``(left.rows, right_t.rows, K)``. Two matrix products along the leading axes."""
    a, b = x.shape[:2]
    rows = torch.mm(left, x.reshape(a, -1)).view(left.shape[0], b, -1)
    return torch.matmul(right_t, rows)


def filter_transform(weight: Tensor, tile: int) -> Tensor:
    """``U = G g G^T`` of every 3x3 filter. Shapes: ``(C_out, C_in, 3, 3)`` ->
    ``((tile+2)^2, C_in, C_out)``."""
    _, g, _ = _matrices(tile, weight)
    size = tile + 2
    c_out, c_in = weight.shape[:2]
    # (3, 3, C_in*C_out) with the filter taps leading, then G . G^T along them.
    taps = weight.permute(2, 3, 1, 0).reshape(3, 3, -1)
    return _sandwich(g, taps, g).reshape(size * size, c_in, c_out)


def _filter_transform_adjoint(grad_u: Tensor, tile: int) -> Tensor:
    """``dg = G^T dU G``: ``((tile+2)^2, C_in, C_out)`` -> ``(C_out, C_in, 3, 3)``."""
    _, g, _ = _matrices(tile, grad_u)
    size, c_in, c_out = tile + 2, grad_u.shape[1], grad_u.shape[2]
    taps = _sandwich(g.t(), grad_u.reshape(size, size, -1), g.t())
    return taps.reshape(3, 3, c_in, c_out).permute(3, 2, 0, 1)


def _tile_grid(h: int, w: int, tile: int) -> Tuple[int, int]:
    return -(-h // tile), -(-w // tile)


def _input_tiles(x: Tensor, tile: int) -> Tensor:
    """``V = B^T d B`` of the overlapping ``(tile+2)^2`` input tiles at stride ``tile`` of
    the zero-padded input. ``(N, C, H, W)`` -> ``((tile+2)^2, N*rows*cols, C)``."""
    n, c, h, w = x.shape
    size = tile + 2
    rows, cols = _tile_grid(h, w, tile)
    padded = x.new_zeros(n, tile * rows + 2, tile * cols + 2, c)
    padded[:, 1:h + 1, 1:w + 1].copy_(x.permute(0, 2, 3, 1))
    s_n, s_h, s_w, s_c = padded.stride()
    tiles = padded.as_strided((size, size, n, rows, cols, c),
                              (s_h, s_w, s_n, tile * s_h, tile * s_w, s_c))
    b_t, _, _ = _matrices(tile, x)
    return _sandwich(b_t, tiles, b_t).view(size * size, n * rows * cols, c)


def _sandwich_output(m: Tensor, tile: int) -> Tensor:
    """``Y = A^T M A`` per tile: ``((tile+2)^2, P, C)`` -> ``(tile, tile, P*C)``."""
    _, _, a_t = _matrices(tile, m)
    size = tile + 2
    return _sandwich(a_t, m.view(size, size, -1), a_t)


def _untile(y: Tensor, n: int, h: int, w: int, tile: int, like: Tensor,
            bias: Optional[Tensor]) -> Tensor:
    """Non-overlapping ``tile x tile`` output tiles ``(tile, tile, N*rows*cols*C)`` -> an
    ``(N, C, H, W)`` map in ``like``'s memory format (channels_last or contiguous), + bias."""
    rows, cols = _tile_grid(h, w, tile)
    tiles = y.view(tile, tile, n, rows, cols, -1)
    c = tiles.shape[-1]
    channels_last = is_channels_last(like)
    if channels_last:
        out = like.new_empty(n, rows, tile, cols, tile, c)
        view, bias_shape = tiles.permute(2, 3, 0, 4, 1, 5), (1, 1, 1, 1, 1, c)
        crop = out.view(n, tile * rows, tile * cols, c)[:, :h, :w].permute(0, 3, 1, 2)
    else:
        out = like.new_empty(n, c, rows, tile, cols, tile)
        view, bias_shape = tiles.permute(2, 5, 3, 0, 4, 1), (1, c, 1, 1, 1, 1)
        crop = out.view(n, c, tile * rows, tile * cols)[:, :, :h, :w]
    if bias is None:
        out.copy_(view)
    else:
        torch.add(view, bias.view(bias_shape), out=out)
    if (h, w) != (tile * rows, tile * cols):
        crop = crop.contiguous(memory_format=torch.channels_last if channels_last else
                               torch.contiguous_format)
    return crop


def _output_gradient_tiles(grad_y: Tensor, tile: int) -> Tensor:
    """``dM = A dY A^T`` of the non-overlapping output-gradient tiles.
    ``(N, C_out, H, W)`` -> ``((tile+2)^2, N*rows*cols, C_out)``."""
    n, c, h, w = grad_y.shape
    rows, cols = _tile_grid(h, w, tile)
    padded = grad_y.new_zeros(tile, tile, n, rows, cols, c)
    # Element (n, c, r*tile + i, q*tile + j) of dY goes to padded[i, j, n, r, q, c].
    if (h, w) != (tile * rows, tile * cols):
        grad_y = F.pad(grad_y, (0, tile * cols - w, 0, tile * rows - h))
    padded.permute(2, 3, 0, 4, 1, 5).copy_(
        grad_y.permute(0, 2, 3, 1).view(n, rows, tile, cols, tile, c))
    _, _, a_t = _matrices(tile, grad_y)
    size = tile + 2
    return _sandwich(a_t.t(), padded, a_t.t()).view(size * size, n * rows * cols, c)


def _scatter_input_gradient(grad_v: Tensor, n: int, c: int, h: int, w: int, tile: int,
                            like: Tensor) -> Tensor:
    """Adjoint of :func:`_input_tiles`: ``dd = B dV B^T`` per tile, summed back onto the
    overlapping positions of the padded input, then cropped. ``((tile+2)^2, P, C)`` ->
    ``(N, C, H, W)`` in channels_last memory format."""
    size = tile + 2
    rows, cols = _tile_grid(h, w, tile)
    b_t, _, _ = _matrices(tile, grad_v)
    tiles = _sandwich(b_t.t(), grad_v.view(size, size, -1), b_t.t())
    tiles = tiles.view(size, size, n, rows, cols, c)
    padded = like.new_zeros(n, tile * rows + 2, tile * cols + 2, c)
    # The first tile x tile positions of every tile cover the padded map once: one copy.
    padded[:, :tile * rows, :tile * cols].view(n, rows, tile, cols, tile, c).copy_(
        tiles[:tile, :tile].permute(2, 3, 0, 4, 1, 5))
    # The last 2 rows/columns of each tile overlap the next tile's first ones: added.
    s_n, s_h, s_w, s_c = padded.stride()
    for i in range(size):
        for j in range(size):
            if i >= tile or j >= tile:
                padded.as_strided((n, rows, cols, c), (s_n, tile * s_h, tile * s_w, s_c),
                                  i * s_h + j * s_w).add_(tiles[i, j])
    return padded[:, 1:h + 1, 1:w + 1].permute(0, 3, 1, 2)


class _WinogradConv3x3(torch.autograd.Function):
    """Autograd of :func:`winograd_conv3x3` (see the module notes for the adjoint)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                tile: int) -> Tensor:
        v = _input_tiles(x, tile)
        u = filter_transform(weight, tile)
        y = _sandwich_output(torch.bmm(v, u), tile)
        # x and the weight, which autograd keeps anyway, rather than V and U (2.25x and 4x
        # larger with tile 4, which raised a training step's peak memory by more than the
        # recompute costs in time; `tools/benchmark.py --with-cp-memory` measures the peak).
        ctx.save_for_backward(x, weight)
        ctx.tile, ctx.x_shape, ctx.has_bias = tile, x.shape, bias is not None
        ctx.channels_last = is_channels_last(x)
        n, _, h, w = x.shape
        return _untile(y, n, h, w, tile, x, bias)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        x, weight = ctx.saved_tensors
        tile = ctx.tile
        n, c, h, w = ctx.x_shape
        grad_m = _output_gradient_tiles(grad_y, tile)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            u = filter_transform(weight, tile)
            grad_x = _scatter_input_gradient(torch.bmm(grad_m, u.transpose(1, 2)), n, c, h,
                                             w, tile, grad_y)
            grad_x = grad_x.contiguous(memory_format=torch.channels_last
                                       if ctx.channels_last else torch.contiguous_format)
        if ctx.needs_input_grad[1]:
            v = _input_tiles(x, tile)
            grad_w = _filter_transform_adjoint(torch.bmm(v.transpose(1, 2), grad_m), tile)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_y.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def winograd_conv3x3(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     tile: int = 4) -> Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=1)`` by Winograd F(tile x tile, 3x3),
    with autograd. Shapes: ``x (N, C_in, H, W)``, ``weight (C_out, C_in, 3, 3)`` ->
    ``(N, C_out, H, W)`` in ``x``'s memory format."""
    check_tile(tile)
    return _WinogradConv3x3.apply(x, weight, bias, tile)
