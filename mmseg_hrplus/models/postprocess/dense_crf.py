"""The fully connected CRF of DeepLabv2 (Krähenbühl & Koltun 2011), on one image's softmax.

DeepLabv2 (Chen et al., TPAMI 2017, Sec. 3.3) refines the network's class probabilities with a
dense CRF whose pairwise term has two kernels on the image: a Gaussian of the pixel positions
(smoothness, ``gaussian_sxy`` / ``gaussian_weight``) and a bilateral kernel of positions and
colours (edges, ``bilateral_sxy`` / ``bilateral_srgb`` / ``bilateral_weight``), solved with a
few mean-field iterations. The unary is ``-log(max(p, unary_clip))``.

The inference is Krähenbühl's C++ code through the ``pydensecrf2`` package (module
``pydensecrf``), an optional extra: ``pip install -e .[crf]``. The defaults are the values of
kazuto1011/deeplab-pytorch's VOC and COCO-Stuff configs (the authors' released DeepLabv2 test
settings): 10 iterations, Gaussian sxy 1 / weight 3, bilateral sxy 67 / srgb 3 / weight 4.
"""
from typing import Any

import numpy as np

from mmseg_hrplus.utils.validation import check_int

INSTALL_HINT = "pip install -e .[crf]  (or: pip install pydensecrf2)"


def import_pydensecrf() -> Any:
    """The ``pydensecrf`` modules ``(densecrf, utils)``; ImportError naming the extra if absent."""
    try:
        import pydensecrf.densecrf as densecrf
        import pydensecrf.utils as utils
    except ImportError as err:
        raise ImportError(f'the dense CRF needs the optional package pydensecrf2 (module '
                          f'pydensecrf), which is not importable ({err}); install it with: '
                          f'{INSTALL_HINT}') from err
    return densecrf, utils


class DenseCRF:
    """Refine one image's class probabilities with a fully connected CRF.

    Args:
        iterations: mean-field iterations.
        gaussian_sxy: spatial standard deviation (pixels) of the smoothness kernel.
        gaussian_weight: its weight (Potts compatibility).
        bilateral_sxy: spatial standard deviation (pixels) of the appearance kernel.
        bilateral_srgb: its colour standard deviation (0..255 intensity units).
        bilateral_weight: its weight (Potts compatibility).
        unary_clip: probabilities below this are clipped before ``-log`` (the library's
            ``unary_from_softmax`` default).

    Raises:
        ValueError: for a non-positive iteration count, standard deviation or clip, or a
            negative weight.
        ImportError: when ``pydensecrf2`` is not installed (naming ``pip install -e .[crf]``).

    Example:
        >>> crf = DenseCRF(iterations=5)
        >>> probs = crf(image_hw3_uint8, softmax_chw_float32)   # (C, H, W), sums to 1
    """

    def __init__(self,
                 iterations: int = 10,
                 gaussian_sxy: float = 1.0,
                 gaussian_weight: float = 3.0,
                 bilateral_sxy: float = 67.0,
                 bilateral_srgb: float = 3.0,
                 bilateral_weight: float = 4.0,
                 unary_clip: float = 1e-5) -> None:
        check_int('iterations', iterations, owner='DenseCRF')
        for name, value in (('gaussian_sxy', gaussian_sxy), ('bilateral_sxy', bilateral_sxy),
                            ('bilateral_srgb', bilateral_srgb), ('unary_clip', unary_clip)):
            if not value > 0:
                raise ValueError(f'DenseCRF: {name}={value!r} must be > 0')
        for name, value in (('gaussian_weight', gaussian_weight),
                            ('bilateral_weight', bilateral_weight)):
            if not value >= 0:
                raise ValueError(f'DenseCRF: {name}={value!r} must be >= 0')
        self._densecrf, self._utils = import_pydensecrf()
        self.iterations = iterations
        self.gaussian_sxy = float(gaussian_sxy)
        self.gaussian_weight = float(gaussian_weight)
        self.bilateral_sxy = float(bilateral_sxy)
        self.bilateral_srgb = float(bilateral_srgb)
        self.bilateral_weight = float(bilateral_weight)
        self.unary_clip = float(unary_clip)

    def __repr__(self) -> str:
        return (f'DenseCRF(iterations={self.iterations}, gaussian_sxy={self.gaussian_sxy}, '
                f'gaussian_weight={self.gaussian_weight}, bilateral_sxy={self.bilateral_sxy}, '
                f'bilateral_srgb={self.bilateral_srgb}, '
                f'bilateral_weight={self.bilateral_weight})')

    def __call__(self, image: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Refined probabilities.

        Args:
            image: ``(H, W, 3)`` uint8, the image the probabilities belong to. The exact
                colour kernel is isotropic, but the library's permutohedral-lattice
                approximation is not invariant to the channel order (BGR vs RGB changed
                marginals by up to 0.34 on a 40x56 crop with random probabilities): pass the
                order the reference used (kazuto1011's demo passes BGR).
            probs: ``(C, H, W)`` class probabilities (a softmax).

        Returns:
            ``(C, H, W)`` float32 marginals after the mean-field iterations.
        """
        if probs.ndim != 3:
            raise ValueError(f'DenseCRF: probs must be (C, H, W), got shape {probs.shape}')
        num_classes, h, w = probs.shape
        if image.shape != (h, w, 3) or image.dtype != np.uint8:
            raise ValueError(f'DenseCRF: image must be ({h}, {w}, 3) uint8 to match probs '
                             f'{probs.shape}, got {image.shape} {image.dtype}')
        unary = self._utils.unary_from_softmax(probs.astype(np.float32), clip=self.unary_clip)
        crf = self._densecrf.DenseCRF2D(w, h, num_classes)
        crf.setUnaryEnergy(np.ascontiguousarray(unary))
        crf.addPairwiseGaussian(sxy=self.gaussian_sxy, compat=self.gaussian_weight)
        crf.addPairwiseBilateral(sxy=self.bilateral_sxy, srgb=self.bilateral_srgb,
                                 rgbim=np.ascontiguousarray(image),
                                 compat=self.bilateral_weight)
        marginals = crf.inference(self.iterations)
        return np.asarray(marginals, dtype=np.float32).reshape(num_classes, h, w)
