"""Bounds for comparing the float32 results of two code paths, derived from float32 arithmetic.

Two code paths that compute the same function in exact arithmetic (Winograd vs direct
convolution, onnxruntime vs PyTorch, BN folded into the conv weights, channels_last vs
contiguous kernels, per-stream 1x1 convs summed vs one conv over the concatenation) round
differently. Their difference scales with the magnitude of the values, so it is compared with a
fraction of the largest expected magnitude, never with a fixed number:

    max |actual - expected|  <=  rel * max |expected|

(one max over the whole output, not elementwise, so near-zero entries do not blow it up), with

    rel = FLOAT32_EPS * growth * MARGIN

* ``FLOAT32_EPS = 2**-23 = 1.19e-7``: the spacing of float32 numbers at 1. One rounding errs by
  at most half of it, relative, and by ``FLOAT32_EPS / sqrt(12)`` rms (uniformly distributed).
* ``growth`` (:func:`rounding_growth`): the typical difference in epsilons. Rounding errors add
  like a random walk (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
  sec. 2.8): ``depth`` layers of length-``n`` dot products, whose partial sums have the scale of
  the output, carry ``sqrt(n * depth / 12)`` epsilons rms, and the difference of two paths
  rounding independently ``sqrt(2)`` times that: ``sqrt(n * depth / 6)``. The largest
  difference and the largest value are both ~4 rms out, so the ratio stays that size.
  Measured on single 3x3 convs (16, 64, 144 channels, against float64): 0.7-1.2x this estimate.
* ``amplification``: Winograd F(m x m, 3 x 3) computes each output from (m+2)^2 transformed
  products ``M`` summed over the input channels only, ``Y = A^T M A``. A relative rounding error
  in every element of ``M`` reaches ``Y`` amplified 10.7x (m = 4: A^T's and B^T's entries up to
  8 and 5 make ``M`` larger than ``Y``, which cancels) or 1.6x (m = 2), from the transform
  matrices (rms over random tiles and filters); a direct conv's 9 products reach it 1x. So a
  Winograd conv over C channels has ``amplification * sqrt(C / 6)``: measured against float64
  0.8-1.5x that for F(4x4) (16-144 channels).
* ``MARGIN = 10``: for other inputs, seeds, thread counts and CPUs. The SIMD width (AVX2 vs
  AVX-512) and the kernel library's blocking change the summation order of every reduction, so
  a bound at the edge of one machine's rounding fails on another: an absolute 1e-4 on ONNX
  logits of magnitude 12 was met with 1.007e-4 on an AVX-512 EPYC (8.4e-6 of the largest logit).

Where two paths run the same kernels on the same data in the same order, the results are bit for
bit equal on any CPU, and such tests assert ``torch.equal`` instead.
"""
import math
from typing import Sequence, Tuple, Union

import numpy as np
import torch

FLOAT32_EPS = float(torch.finfo(torch.float32).eps)  # 2**-23 = 1.19e-7
MARGIN = 10.0
#: Rounding amplification of Winograd F(m x m, 3 x 3) relative to a direct conv, per tile size m
#: (see the module notes).
WINOGRAD_AMPLIFICATION = {2: 1.6, 4: 10.7}


def rounding_growth(n: int, depth: int = 1, amplification: float = 1.0) -> float:
    """Typical relative difference, in float32 epsilons, of two evaluations that round
    differently: ``amplification * sqrt(n * depth / 6)`` for ``depth`` layers of length-``n``
    dot products (see the module notes)."""
    return amplification * math.sqrt(n * depth / 6)


def float32_bound(growth: float, margin: float = MARGIN) -> float:
    """``FLOAT32_EPS * growth * margin``: a relative bound for a typical difference of ``growth``
    float32 epsilons."""
    return FLOAT32_EPS * growth * margin


# Comparison classes. The tests print the measured relative differences (pytest -s); on the
# AVX2 CI machine they sit at 12% of their bounds or less.

#: One layer or two evaluated with reassociated sums: the HRNetV2 head's 1x1 conv over the
#: concatenated streams (270 channels for W18) vs per-stream convs resized and summed, a BN
#: folded into one conv, BN after it or not: n = 300 terms, depth 2 -> growth 10, 1.2e-5.
SHALLOW = float32_bound(rounding_growth(300, depth=2))

#: A whole segmentor computed by other kernels or in another order (BN folded and channels_last,
#: onnxruntime vs PyTorch): 3x3 convs over up to 144 channels (HRNet-W18-small's widest;
#: BiSeNetV2-base has 128) n = 1296, about 30 of them from input to logit -> growth 80, 9.6e-5.
DEEP = float32_bound(rounding_growth(9 * 144, depth=30))

#: The same segmentor with every 3x3 stride-1 conv computed by Winograd F(4x4, 3x3), against
#: direct convs: sums over up to 144 channels, 30 deep, amplified 10.7x -> growth 287, 3.4e-4.
#: (3.6x DEEP: F(4x4)'s amplification over a direct conv's 9 taps, 10.7 / sqrt(9).)
WINOGRAD_DEEP = float32_bound(rounding_growth(144, depth=30,
                                              amplification=WINOGRAD_AMPLIFICATION[4]))

#: One conv, Winograd F(m x m) against F.conv2d, forward and gradients, at most 33 channels
#: (tests/models/layers/test_winograd_conv.py: 2 * 16 + 1 output channels are summed for the input
#: gradient; the weight gradient of F(4x4) sums at most 32 tiles): the Winograd side
#: amplification * sqrt(33 / 6), plus the direct side sqrt(9 * 33 / 6) -> growth 32 for F(4x4)
#: (3.8e-5) and 11 for F(2x2) (1.3e-5).
WINOGRAD_ONE_CONV = {m: float32_bound(rounding_growth(33, amplification=a)
                                      + rounding_growth(9 * 33))
                     for m, a in WINOGRAD_AMPLIFICATION.items()}

Values = Union[torch.Tensor, np.ndarray, Sequence[torch.Tensor], Sequence[np.ndarray]]


def _as_float64(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    return np.asarray(value, dtype=np.float64)


def _pairs(actual: Values, expected: Values) -> Sequence[Tuple[np.ndarray, np.ndarray]]:
    if isinstance(actual, (torch.Tensor, np.ndarray)):
        actual, expected = [actual], [expected]
    actual, expected = list(actual), list(expected)
    assert len(actual) == len(expected), f'{len(actual)} outputs vs {len(expected)} expected'
    pairs = [(_as_float64(a), _as_float64(e)) for a, e in zip(actual, expected)]
    for a, e in pairs:
        assert a.shape == e.shape, f'shape {a.shape} vs expected {e.shape}'
    return pairs


def check_relative(max_abs_diff: float, scale: float, rel: float, what: str = 'values') -> float:
    """Assert ``max_abs_diff <= rel * scale``, ``scale`` being the largest expected magnitude, and
    return the relative difference ``max_abs_diff / scale``. A NaN or infinite difference fails;
    a zero scale demands equality. The measured relative difference and the bound are printed
    (``pytest -s``) and are in the failure message."""
    assert np.isfinite(scale), f'{what}: the expected values are not finite (max |.| {scale})'
    measured = max_abs_diff / scale if scale > 0 else (0.0 if max_abs_diff == 0 else math.inf)
    message = (f'{what}: max |diff| {max_abs_diff:.3g} = {measured:.3g} of max |expected| '
               f'{scale:.3g}; bound {rel:.3g} of it ({rel * scale:.3g} absolute)')
    print(f'[float bound] {message}: {measured / rel:.1%} of the bound')
    assert np.isfinite(max_abs_diff) and max_abs_diff <= rel * scale, message
    return measured


def assert_close_relative(actual: Values, expected: Values, rel: float,
                          what: str = 'values') -> float:
    """``max |actual - expected| <= rel * max |expected|``, the maxima taken over all elements of
    all pairs. ``actual`` and ``expected``: tensors or arrays, or equally long sequences of them;
    shapes must be equal (no broadcasting). Computed in float64. Returns the measured relative
    difference; see :func:`check_relative`."""
    pairs = _pairs(actual, expected)
    diff = max((float(np.abs(a - e).max()) if a.size else 0.0 for a, e in pairs), default=0.0)
    scale = max((float(np.abs(e).max()) if e.size else 0.0 for _, e in pairs), default=0.0)
    return check_relative(diff, scale, rel, what)


# bfloat16 against float32. bf16 keeps float32's exponent and 8 significant bits (7 stored), so
# its spacing at 1 is BFLOAT16_EPS = 2**-7 = 7.8e-3, 65536x float32's: float32's own rounding
# is negligible beside it and only the bf16 side counts. One rounding errs by
# BFLOAT16_EPS / sqrt(12) rms. Under CPU autocast (mmseg_hrplus/deploy/bf16.py) a conv reads its
# input and its weights rounded to bf16 (each relative error averages over the dot product to
# about one rounding of the output's scale) and writes a bf16 output; the BN, the residual add or
# the fusion sum after it round again: about 4 roundings per layer, 30 layers from input to
# logit (as DEEP) -> sqrt(4 * 30 / 12) = 3.2 roundings rms, 0.025 of the logits' scale, and the
# largest difference and largest value are both ~4 rms out. Times MARGIN: 0.25.
BFLOAT16_EPS = float(torch.finfo(torch.bfloat16).eps)  # 2**-7


def bfloat16_bound(roundings_per_layer: int, depth: int, margin: float = MARGIN) -> float:
    """``BFLOAT16_EPS * sqrt(roundings_per_layer * depth / 12) * margin``: a relative bound for
    a network computed in bf16 against float32 (one side rounding, see the notes above)."""
    return BFLOAT16_EPS * math.sqrt(roundings_per_layer * depth / 12) * margin


#: A whole segmentor under bf16 autocast against float32 (see the notes above): 0.25.
BF16_DEEP = bfloat16_bound(4, depth=30)
