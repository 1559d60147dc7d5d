"""Winograd convolution for 3x3, stride-1, padding-1 convs: the function of ``F.conv2d`` in
exact arithmetic with fewer multiplications, for training and inference.

Why: with BN folded and channels_last, HRNet-W48's 3x3 residual convs already run near this
CPU's peak FMA rate, so only fewer multiply-adds make them faster. Winograd's minimal
filtering F(m x m, 3 x 3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
CVPR 2016) computes an ``m x m`` output tile from an ``(m+2) x (m+2)`` input tile ``d``:

    Y = A^T [ U * V ] A,   U = G g G^T,   V = B^T d B      (``*`` elementwise)

Summed over input channels, the elementwise products become ``(m+2)^2`` independent matrix
products ``[tiles x C_in] @ [C_in x C_out]`` (one ``bmm``); the transforms are small matrix
products along the tile axes. ``(m+2)^2`` multiplications per channel pair and output tile
instead of ``9 m^2``: 36 vs 144 for m=4 (4x fewer), 16 vs 36 for m=2.

Backward is the adjoint of the same linear maps, so it is Winograd too: with
``dM = A dY A^T`` for each output-gradient tile,

    dU = sum over tiles of V^T dM     ->  dg = G^T dU G           (weight gradient)
    dV = dM U^T                       ->  dd = B dV B^T, scattered back onto the overlapping
                                          input tiles              (input gradient)

Results differ from direct convolution only by float rounding: about 3e-5 relative for m=4
(its transforms have entries up to 8) and 5e-6 for m=2, per conv on random data, measured
here. The transforms cost memory traffic proportional to the channels while the products
cost channels squared, so Winograd pays off on wide, low-resolution maps: on this project's
2-core AVX2 CPU, F(4x4) inference beat oneDNN's direct conv from 96 channels up (1.4x at 96,
1.7x at 192, 1.8x at 384) and lost at 48; hence ``min_channels``. On AVX-512 cores oneDNN's
direct conv is faster and Winograd can lose even there (HRNet-W48 whole model: 1.45x with
direct convs vs 1.40x with Winograd on an AVX-512 EPYC), hence ``autotune``.

* **One predicate**: :func:`is_winograd_eligible` decides which convs Winograd computes (3x3,
  stride 1, padding 1, dilation 1, one group, zero padding, at least ``min_channels`` in and
  out). :meth:`WinogradConv2d.convert_winograd` converts a model's plain ``nn.Conv2d`` the way
  ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts BNs.
* **Autotune** (``autotune=True``, like cuDNN's benchmark mode): the first gradient-free call
  of an eligible layer for a conv shape (channels, batch, height, width, tile, bias, memory
  format, dtype, threads) times ``F.conv2d`` against Winograd on that input (one warm-up call
  each, then at least :data:`AUTOTUNE_REPEATS` interleaved rounds and at least
  :data:`AUTOTUNE_MIN_TOTAL_S` per path, minimum of each) and keeps Winograd for that shape,
  for every layer of the process, only if it measured at most :data:`AUTOTUNE_MARGIN` of the
  direct time: near-ties go to the direct conv, which rounds less and whose choice does not
  flip with timing noise. :func:`winograd_decisions` returns the
  decisions with both times. Calls with gradients (training) are tuned the same way, on the
  forward and backward together (a random output gradient, the input and the weight as the
  call has them), keyed also on which gradients are needed: on the 2-core AVX2 CPU the
  backward of the widest stream loses at two threads while the narrower ones win. The choice
  changes only float rounding, never the function computed.
* **Filter cache**: gradient-free calls reuse the transformed filters ``U`` while the weight's
  storage address, version counter and a checksum (dot product with a fixed random probe,
  about 2% of the conv's time at 384 channels) are unchanged: writes through ``weight.data``
  (EMA swaps, some wrappers) do not bump the version counter but change the checksum.
  Recomputing ``U`` every call would cost about as much as the Winograd conv itself at 384
  channels (measured 11 ms each, 1x384x16x32, one thread).
* **Autocast and low precision**: under CPU autocast, and for dtypes other than float32 and
  float64, the layer is a plain ``nn.Conv2d`` (autocast then runs the conv in bfloat16, as for
  ``nn.Conv2d``): F(4x4)'s transforms (entries up to 8) would amplify bfloat16 rounding.
"""
import time
from functools import partial
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_hrplus.models.utils.memory_format import is_channels_last
from mmseg_hrplus.registry import MODELS

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
#: Narrowest conv (input and output channels) computed by Winograd unless told otherwise:
#: F(4x4, 3x3) beat oneDNN's direct conv from 96 channels up on this project's 2-core AVX2 CPU
#: and lost at 48 (see the module notes).
DEFAULT_MIN_CHANNELS = 96
_MATRICES: Dict[Tuple[int, torch.dtype, torch.device], Tuple[Tensor, Tensor, Tensor]] = {}


def check_tile(tile: int) -> None:
    if tile not in _TRANSFORMS:
        raise ValueError(f'tile={tile!r} is not supported; allowed values: '
                         f'{", ".join(map(str, TILE_CHOICES))}')


def is_winograd_eligible(conv: nn.Module, min_channels: int = 1) -> bool:
    """The one test of which convs Winograd computes: an ``nn.Conv2d`` (or subclass) with a
    3x3 kernel, stride 1, padding 1, dilation 1, one group, zero padding and at least
    ``min_channels`` input and output channels."""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == 'zeros'
            and conv.in_channels >= min_channels and conv.out_channels >= min_channels)


#: Interleaved timing rounds per path when autotuning a conv shape (after one warm-up each),
#: at least; more until each path has run :data:`AUTOTUNE_MIN_TOTAL_S` seconds (at most
#: :data:`AUTOTUNE_MAX_REPEATS` rounds): short convs are the noisiest.
AUTOTUNE_REPEATS = 5
AUTOTUNE_MIN_TOTAL_S = 0.02
AUTOTUNE_MAX_REPEATS = 50
#: Winograd is kept when its minimum time is at most this fraction of the direct conv's.
AUTOTUNE_MARGIN = 0.95


class ConvShape(NamedTuple):
    """What an autotune decision is keyed on."""
    in_channels: int
    out_channels: int
    batch: int
    height: int
    width: int
    tile: int
    bias: bool
    channels_last: bool
    dtype: str
    threads: int
    #: what the call differentiates: '' (inference: forward only), 'weight', 'input' or
    #: 'input+weight' (training: forward and backward are timed together).
    gradients: str = ''


class WinogradDecision(NamedTuple):
    """``choice`` ('winograd' or 'direct') and the minimum seconds per call of each path."""
    choice: str
    winograd_s: float
    direct_s: float


_DECISIONS: Dict[ConvShape, WinogradDecision] = {}


def winograd_decisions() -> Dict[ConvShape, WinogradDecision]:
    """A copy of the autotune decisions made so far in this process."""
    return dict(_DECISIONS)


def winograd_decision_records() -> list:
    """:func:`winograd_decisions` as a list of flat dicts (for JSON reports)."""
    return [dict(shape._asdict(), **decision._asdict())
            for shape, decision in _DECISIONS.items()]


def clear_winograd_decisions() -> None:
    """Forget every autotune decision (the next call per shape measures again)."""
    _DECISIONS.clear()


def _decision(key: ConvShape,
              paths: Callable[[], Dict[str, Callable[[], object]]]) -> WinogradDecision:
    """The decision cached for ``key``, or one measured now: :func:`min_seconds` of the two
    callables ``paths()`` returns ('winograd', 'direct'; built only when measuring), Winograd
    kept if it takes at most :data:`AUTOTUNE_MARGIN` of the direct time."""
    decision = _DECISIONS.get(key)
    if decision is None:
        times = min_seconds(paths())
        faster = times['winograd'] <= AUTOTUNE_MARGIN * times['direct']
        decision = _DECISIONS[key] = WinogradDecision('winograd' if faster else 'direct',
                                                      times['winograd'], times['direct'])
    return decision


def min_seconds(fns: Dict[str, Callable[[], object]], repeats: int = AUTOTUNE_REPEATS,
                warmup: int = 1, min_total_s: float = AUTOTUNE_MIN_TOTAL_S,
                max_repeats: int = AUTOTUNE_MAX_REPEATS) -> Dict[str, float]:
    """Minimum seconds per call of each function: ``warmup`` untimed calls each, then rounds in
    which each runs once, the order alternating per round: at least ``repeats`` rounds, more
    until every function has run ``min_total_s`` seconds, at most ``max_repeats``."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    best = {name: float('inf') for name in names}
    total = {name: 0.0 for name in names}
    r = 0
    while r < repeats or (r < max_repeats and min(total.values()) < min_total_s):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name]()
            elapsed = time.perf_counter() - start
            best[name] = min(best[name], elapsed)
            total[name] += elapsed
        r += 1
    return best


def _cpu_autocast_check() -> Callable[[], bool]:
    """The check for CPU autocast this torch offers, picked once: ``is_autocast_enabled('cpu')``
    where it takes a device type (recent releases), ``is_autocast_cpu_enabled`` before (torch
    2.1), so the forward pass does not probe the signature on every call."""
    try:
        torch.is_autocast_enabled('cpu')
    except TypeError:
        return torch.is_autocast_cpu_enabled
    return partial(torch.is_autocast_enabled, 'cpu')


#: Whether CPU autocast is on (see :func:`_cpu_autocast_check`).
_cpu_autocast_enabled = _cpu_autocast_check()


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
        # larger with tile 4: 1.6x the step's peak memory for HRNet-W48); both are recomputed.
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


@MODELS.register_module()
class WinogradConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes the convs :func:`is_winograd_eligible` accepts (with
    ``min_channels``) by Winograd F(tile x tile, 3x3), and any other conv as ``nn.Conv2d``
    does. Same parameters and state-dict keys as ``nn.Conv2d``, so checkpoints load either
    way; use it as ``conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d')`` of a backbone (mmcv's
    ``build_conv_layer``), or convert a built model with :meth:`convert_winograd`.

    Args:
        *args, **kwargs: those of ``nn.Conv2d``.
        tile: 4 (F(4x4, 3x3), 4x fewer multiplications) or 2 (F(2x2, 3x3), 2.25x fewer,
            less rounding).
        min_channels: narrower convs run as ``nn.Conv2d`` (Winograd's transforms cost more
            than they save there; see the module notes).
        autotune: time direct against Winograd once per conv shape (and per kind of call:
            inference, or forward + backward in training) and keep the faster (see the module
            notes); False: always Winograd.

    Only CPU tensors take the Winograd path: on CUDA the layer is ``nn.Conv2d`` (cuDNN picks
    its own algorithm, Winograd included), and so it is in a trace (an ONNX export has a plain
    Conv node), under autocast and for dtypes other than float32/float64. Without gradients
    (inference) the transformed filters are cached until the weight changes (also through
    ``weight.data``; see the module notes).
    """

    def __init__(self, *args, tile: int = 4, min_channels: int = DEFAULT_MIN_CHANNELS,
                 autotune: bool = False, **kwargs) -> None:
        check_tile(tile)
        if min_channels < 1:
            raise ValueError(f'min_channels={min_channels} must be >= 1')
        super().__init__(*args, **kwargs)
        self.tile = tile
        self.min_channels = min_channels
        self.autotune = autotune
        self._cached: Optional[Tuple[tuple, Tensor]] = None
        self._probe: Optional[Tensor] = None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, tile: int = 4, min_channels: int = 1,
                  autotune: bool = False) -> 'WinogradConv2d':
        """A :class:`WinogradConv2d` sharing ``conv``'s parameters (not copies)."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                  conv.padding_mode, tile=tile, min_channels=min_channels, autotune=autotune,
                  device='meta')
        new.weight = conv.weight
        new.bias = conv.bias
        return new.train(conv.training)

    @classmethod
    def convert_winograd(cls, module: nn.Module, min_channels: int = DEFAULT_MIN_CHANNELS,
                         tile: int = 4, autotune: bool = False) -> nn.Module:
        """``module`` with every plain ``nn.Conv2d`` (exactly that class) that
        :func:`is_winograd_eligible` accepts with ``min_channels`` replaced by a
        :class:`WinogradConv2d` sharing its parameters; like
        ``nn.SyncBatchNorm.convert_sync_batchnorm``, children are replaced in place and the
        (possibly new) module is returned. Existing :class:`WinogradConv2d` layers keep their
        tile and ``min_channels`` and get ``autotune`` switched on if asked."""
        check_tile(tile)
        if min_channels < 1:
            raise ValueError(f'min_channels={min_channels} must be >= 1')
        if isinstance(module, cls):
            module.autotune = module.autotune or autotune
            return module
        if type(module) is nn.Conv2d and is_winograd_eligible(module, min_channels):
            return cls.from_conv(module, tile, min_channels, autotune)
        for name, child in module.named_children():
            new = cls.convert_winograd(child, min_channels, tile, autotune)
            if new is not child:
                setattr(module, name, new)
        return module

    @property
    def uses_winograd(self) -> bool:
        """:func:`is_winograd_eligible` with this layer's ``min_channels``."""
        return is_winograd_eligible(self, self.min_channels)

    def forward(self, x: Tensor) -> Tensor:
        # On GPUs cuDNN already chooses among direct, FFT and Winograd algorithms itself. A
        # trace (ONNX export) records a plain Conv: the runtime picks its own algorithm, and
        # the tiling here depends on the input size, which a trace would freeze.
        if (not self.uses_winograd or x.device.type != 'cpu' or torch.jit.is_tracing()
                or x.dtype not in (torch.float32, torch.float64)
                or _cpu_autocast_enabled()):
            return super().forward(x)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects (N, {self.in_channels}, H, W) '
                             f'inputs, got {tuple(x.shape)}')
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            if self.autotune and self.decide_training(x).choice == 'direct':
                return super().forward(x)
            return winograd_conv3x3(x, self.weight, self.bias, self.tile)
        with torch.no_grad():
            if self.autotune and self.decide(x).choice == 'direct':
                return super().forward(x)
            return self._winograd_inference(x)

    def _winograd_inference(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        y = _sandwich_output(torch.bmm(_input_tiles(x, self.tile), self._filters()), self.tile)
        return _untile(y, n, h, w, self.tile, x, self.bias)

    def conv_shape(self, x: Tensor, gradients: str = '') -> ConvShape:
        n, _, h, w = x.shape
        return ConvShape(self.in_channels, self.out_channels, n, h, w, self.tile,
                         self.bias is not None, is_channels_last(x), str(x.dtype).split('.')[-1],
                         torch.get_num_threads(), gradients)

    @torch.no_grad()
    def decide(self, x: Tensor) -> WinogradDecision:
        """The autotune decision for ``x``'s conv shape: the cached one, or measured now on
        ``x`` (see the module notes)."""
        return _decision(self.conv_shape(x), lambda: {
            'winograd': lambda: self._winograd_inference(x),
            'direct': lambda: super(WinogradConv2d, self).forward(x)})

    def decide_training(self, x: Tensor) -> WinogradDecision:
        """The autotune decision for a call with gradients: forward plus backward of each path
        on a copy of ``x`` and of the parameters (nothing of the model's is touched; the
        output gradient is random)."""
        needs_x, needs_w = x.requires_grad, self.weight.requires_grad
        gradients = '+'.join(name for name, needed in (('input', needs_x), ('weight', needs_w))
                             if needed)

        def paths() -> Dict[str, Callable[[], object]]:
            xc = x.detach().clone().requires_grad_(needs_x)
            weight = self.weight.detach().clone().requires_grad_(needs_w)
            bias = None if self.bias is None else self.bias.detach().clone().requires_grad_(
                self.bias.requires_grad)
            inputs = [t for t in (xc, weight, bias) if t is not None and t.requires_grad]
            grad_y = torch.randn_like(F.conv2d(xc.detach(), weight.detach(), None, 1, 1))

            def step(conv: Callable[[], Tensor]) -> Callable[[], object]:
                return lambda: torch.autograd.grad(conv(), inputs, grad_y)

            return {'winograd': step(lambda: winograd_conv3x3(xc, weight, bias, self.tile)),
                    'direct': step(lambda: F.conv2d(xc, weight, bias, 1, 1))}

        with torch.enable_grad():
            return _decision(self.conv_shape(x, gradients), paths)

    def _checksum(self, weight: Tensor) -> float:
        """Dot product of the weight with a fixed random probe of its shape and strides."""
        if (self._probe is None or self._probe.shape != weight.shape
                or self._probe.stride() != weight.stride() or self._probe.dtype != weight.dtype):
            gen = torch.Generator().manual_seed(0x5EED)
            self._probe = torch.empty_like(weight).copy_(
                torch.rand(weight.shape, generator=gen, dtype=weight.dtype) + 0.5)
        return float(torch.vdot(_flat(weight), _flat(self._probe)))

    def _filters(self) -> Tensor:
        weight = self.weight.detach()
        key = (weight.data_ptr(), self.weight._version, weight.dtype, self._checksum(weight))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, filter_transform(weight, self.tile).contiguous())
        return self._cached[1]

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', tile={self.tile}, min_channels={self.min_channels}'
                f', autotune={self.autotune}')


def _flat(t: Tensor) -> Tensor:
    """The elements of a dense tensor in memory order, as a 1-D view (no copy)."""
    if t.is_contiguous():
        return t.view(-1)
    return t.permute(0, 2, 3, 1).reshape(-1)  # channels_last weights: a view as well
