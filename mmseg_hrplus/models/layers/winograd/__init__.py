"""Winograd convolution for 3x3, stride-1, padding-1 convs: the function of ``F.conv2d`` in
exact arithmetic with fewer multiplications, for training and inference.

Why: with BN folded and channels_last, wide 3x3 convs already run near a CPU's peak FMA rate, so
only fewer multiply-adds make them faster. Winograd's minimal filtering F(m x m, 3 x 3) (Lavin &
Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) computes an ``m x m``
output tile from an ``(m+2) x (m+2)`` input tile ``d``:

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

Results differ from direct convolution only by float rounding, more for m=4 (its transforms have
entries up to 8) than for m=2; the tests bound both (``tests/helpers/float_bounds.py``). The
transforms cost memory traffic proportional to the channels while the products cost channels
squared, so Winograd pays off on wide, low-resolution maps and loses on narrow ones, hence
``min_channels``. Whether it beats the direct conv at all depends on the core (oneDNN's direct
conv is faster on AVX-512 cores than on AVX2 ones), hence ``autotune``. Measured figures, with
their CPU and command, are in docs/benchmarks.md.

Modules:

* :mod:`.functional`: the transforms, the tiling and :func:`winograd_conv3x3` (autograd).
* :mod:`.autotune`: the conv shapes, the measured decisions and their process-wide cache.
* :mod:`.conv`: :class:`WinogradConv2d` and :func:`is_winograd_eligible`.

What they do:

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
  flip with timing noise. :func:`winograd_decisions` returns the decisions with both times.
  Calls with gradients (training) are tuned the same way, on the forward and backward together
  (a random output gradient, the input and the weight as the call has them), keyed also on
  which gradients are needed: the backward of a wide stream may lose where the narrower ones
  win. The choice changes only float rounding, never the function computed.
* **Filter cache**: gradient-free calls reuse the transformed filters ``U`` while the weight's
  storage address, version counter and a checksum (dot product with a fixed random probe, a
  small fraction of the conv's time) are unchanged: writes through ``weight.data`` (EMA swaps,
  some wrappers) do not bump the version counter but change the checksum. Recomputing ``U``
  every call would cost about as much as the Winograd conv itself on wide convs.
* **Autocast and low precision**: under CPU autocast, and for dtypes other than float32 and
  float64, the layer is a plain ``nn.Conv2d`` (autocast then runs the conv in bfloat16, as for
  ``nn.Conv2d``): F(4x4)'s transforms (entries up to 8) would amplify bfloat16 rounding.
"""
from .autotune import (AUTOTUNE_MARGIN, AUTOTUNE_MAX_REPEATS, AUTOTUNE_MIN_TOTAL_S,
                       AUTOTUNE_REPEATS, ConvShape, WinogradDecision, clear_winograd_decisions,
                       winograd_decision_records, winograd_decisions)
from .conv import DEFAULT_MIN_CHANNELS, WinogradConv2d, is_winograd_eligible
from .functional import TILE_CHOICES, check_tile, filter_transform, winograd_conv3x3

__all__ = [
    'AUTOTUNE_MARGIN', 'AUTOTUNE_MAX_REPEATS', 'AUTOTUNE_MIN_TOTAL_S', 'AUTOTUNE_REPEATS',
    'ConvShape', 'DEFAULT_MIN_CHANNELS', 'TILE_CHOICES', 'WinogradConv2d', 'WinogradDecision',
    'check_tile', 'clear_winograd_decisions', 'filter_transform', 'is_winograd_eligible',
    'winograd_conv3x3', 'winograd_decision_records', 'winograd_decisions'
]
