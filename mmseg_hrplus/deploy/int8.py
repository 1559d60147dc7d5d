"""int8 post-training quantization of a segmentor's OpenVINO model with NNCF.

Needs the optional extra ``openvino`` (``pip install -r requirements/openvino.txt``), which
brings NNCF. Why NNCF on the OpenVINO model and not torch's PT2E flow: docs/deployment.md.

* :func:`calibration_arrays` turns images into what the exported graph takes: each image goes
  through the segmentor's test pipeline (its annotations left out) and its data preprocessor,
  as in inference, and comes out as a float32 ``(1, 3, H, W)`` array;
* :func:`quantize_openvino` hands those arrays to ``nncf.quantize``, which runs the float
  model on them, records the range of every activation that feeds a convolution or matmul
  (and of the weights), and inserts ``FakeQuantize`` operations with 256 levels there. The
  returned model still computes in float32 on paper; OpenVINO's CPU plugin fuses each
  ``FakeQuantize`` with the operation after it and runs that in int8 (u8 activations, i8
  weights), whatever precision hint it is compiled with: compile it with
  :func:`mmseg_hrplus.deploy.openvino.compile_model` (``precision='f32'``, so that the layers
  left in float run in f32).

The ranges come from the calibration images only: images unlike the deployment data give
ranges that clip or waste levels, so calibrate on a few hundred images of the target domain
(a few dozen already settle the ranges of a segmentation network; NNCF's default subset is
300).
"""
import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils.validation import check_choice, check_int, check_positive_ints

#: NNCF's quantization presets: 'performance' (symmetric weights and activations, what
#: OpenVINO's int8 kernels run fastest) or 'mixed' (asymmetric activations: better for
#: activations that are not centred on zero, e.g. after a bias without ReLU).
PRESETS = ('performance', 'mixed')

PathLike = Union[str, Path]


def check_calibration(calibration: Iterable[np.ndarray]) -> List[np.ndarray]:
    """``calibration`` as a list of float32 ``(N, C, H, W)`` arrays.

    Raises:
        ValueError: ``calibration`` is empty, or an item is not a float32 array of rank 4
            (the message names ``calibration``, the item's index and what it got).
    """
    arrays = list(calibration)
    if not arrays:
        raise ValueError('calibration is empty: give at least one float32 (N, 3, H, W) array '
                         '(e.g. from calibration_arrays)')
    for index, array in enumerate(arrays):
        if not isinstance(array, np.ndarray):
            raise ValueError(f'calibration[{index}] is a {type(array).__name__}; expected a '
                             'float32 numpy array of shape (N, 3, H, W)')
        if array.dtype != np.float32 or array.ndim != 4:
            raise ValueError(f'calibration[{index}] has dtype {array.dtype} and shape '
                             f'{array.shape}; expected float32 of shape (N, 3, H, W), after '
                             "the segmentor's data preprocessor")
    return arrays


def quantize_openvino(ov_model, calibration: Iterable[np.ndarray],
                      subset_size: Optional[int] = None, preset: str = 'performance'):
    """An int8 copy of ``ov_model``, quantized by NNCF post-training quantization.

    Args:
        ov_model: an ``openvino.Model`` of a segmentor's logits (from
            :func:`mmseg_hrplus.deploy.openvino.convert_onnx`), taking one float32
            ``(N, 3, H, W)`` input after the data preprocessor.
        calibration: float32 ``(N, 3, H, W)`` arrays, already through the data preprocessor
            (:func:`calibration_arrays`); their sizes may differ.
        subset_size: how many of them NNCF runs; default all given.
        preset: one of :data:`PRESETS`.

    Returns:
        A new ``openvino.Model`` with ``FakeQuantize`` operations before its convolutions (see
        the module notes); ``ov_model`` is left unchanged.

    Raises:
        ValueError: an empty calibration set, an item of another dtype or rank, a
            ``subset_size`` below 1 or above the number of arrays, or an unknown ``preset``,
            each naming the argument (before NNCF runs).
    """
    check_choice('preset', preset, PRESETS)
    arrays = check_calibration(calibration)
    subset_size = len(arrays) if subset_size is None else check_int('subset_size', subset_size)
    if subset_size > len(arrays):
        raise ValueError(f'subset_size={subset_size} is more than the {len(arrays)} '
                         'calibration arrays given')
    import nncf

    return nncf.quantize(ov_model, nncf.Dataset(arrays), subset_size=subset_size,
                         preset=getattr(nncf.QuantizationPreset, preset.upper()))


def _file_pipeline(segmentor: nn.Module):
    """The segmentor's test pipeline reading an image file, without its annotations."""
    from mmengine.dataset import Compose
    return Compose([dict(step) for step in segmentor.cfg.test_pipeline
                    if step.get('type') != 'LoadAnnotations'])


def calibration_arrays(segmentor: nn.Module, image_paths: Sequence[PathLike],
                       size: Optional[Tuple[int, int]] = None) -> List[np.ndarray]:
    """The inputs the exported graph of ``segmentor`` sees for ``image_paths``.

    Args:
        segmentor: an mmseg segmentor from ``mmseg.apis.init_model`` (it carries ``cfg``).
        image_paths: image files; each is read and transformed by the test pipeline (resize
            etc.) and normalised by the data preprocessor, as inference does.
        size: ``(H, W)``: resize each array bilinearly to it (the same as resizing the image
            before the normalisation, which is affine per channel); default the pipeline's
            size.

    Returns:
        One float32 ``(1, 3, H, W)`` array per image, in order.

    Raises:
        ValueError: no image given, or a bad ``size``.
        FileNotFoundError: an image path that is not a file (named).
    """
    paths = [os.fspath(path) for path in image_paths]
    if not paths:
        raise ValueError('image_paths is empty: give at least one calibration image')
    if size is not None:
        size = check_positive_ints('size', size, length=2, entries=('H', 'W'))
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'calibration image {path} is not a file')
    from mmengine.dataset import pseudo_collate

    pipeline = _file_pipeline(segmentor)
    arrays = []
    with torch.no_grad():
        for path in paths:
            batch = segmentor.data_preprocessor(pseudo_collate([pipeline(dict(img_path=path))]),
                                                False)
            inputs = batch['inputs'].float().cpu()
            if size is not None:
                inputs = F.interpolate(inputs, size=size, mode='bilinear', align_corners=False)
            arrays.append(np.ascontiguousarray(inputs.numpy(), dtype=np.float32))
    return arrays
