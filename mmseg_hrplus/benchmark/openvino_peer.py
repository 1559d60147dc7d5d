"""OpenVINO as a peer in the benchmark: our model exported to ONNX, converted to OpenVINO and
compiled for the CPU with explicit properties (:func:`mmseg_hrplus.deploy.openvino.compile_model`:
``threads`` inference threads, precision f32, hint LATENCY), like the onnxruntime peer
(:mod:`.onnxruntime_peer`); at precision 'bf16' (CPUs with native bf16) or 'int8'
(:func:`mmseg_hrplus.deploy.int8.quantize_openvino`).

int8 here is calibrated on :data:`CALIBRATION_ARRAYS` random normal arrays of the input's shape:
enough to measure SPEED (the int8 kernels run whatever the ranges), not accuracy: for that,
calibrate a trained model on real images (tools/infer.py --calib,
tools/deployment/export_onnx.py --calib)."""
import os
import tempfile
import time
from typing import Callable, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

#: How many synthetic arrays the int8 model of the benchmark is calibrated on.
CALIBRATION_ARRAYS = 4


def synthetic_calibration(inputs: Tensor, count: int = CALIBRATION_ARRAYS, seed: int = 1):
    """``count`` float32 arrays of ``inputs``' shape, standard normal from ``seed`` (what the
    data preprocessor gives an image, in scale): int8 calibration for speed measurements."""
    generator = np.random.RandomState(seed)
    return [generator.randn(*inputs.shape).astype(np.float32) for _ in range(count)]


def openvino_infer_fn(model: nn.Module, inputs: Tensor, threads: int, precision: str = 'f32',
                      hint: str = 'LATENCY') -> Tuple[Callable[[], Tensor], float, dict]:
    """``model`` (an mmseg ``EncoderDecoder``) exported at ``inputs``' size
    (``resize=False``: the ``mode='tensor'`` logits), converted, for ``precision='int8'``
    quantized on :func:`synthetic_calibration` (then compiled with the f32 hint), and compiled.

    Returns:
        A function running the compiled model on ``inputs`` (the numpy copy made once) and
        returning the logits as a tensor ``(N, num_classes, h, w)``; the seconds the export,
        conversion and compilation took; and the properties the compiled model reports
        (:func:`mmseg_hrplus.deploy.openvino.compiled_properties`).
    """
    from mmseg_hrplus.deploy.onnx_export import export_onnx
    from mmseg_hrplus.deploy.openvino import (compile_model, compiled_properties, convert_onnx,
                                              runner)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='hrplus_bench_ov_') as tmp:
        path = export_onnx(model, os.path.join(tmp, 'model.onnx'), tuple(inputs.shape[2:]),
                           resize=False)
        ov_model = convert_onnx(path)
        if precision == 'int8':
            from mmseg_hrplus.deploy.int8 import quantize_openvino
            ov_model, precision = quantize_openvino(ov_model, synthetic_calibration(inputs)), 'f32'
        compiled = compile_model(ov_model, threads=threads, precision=precision, hint=hint)
    prepare_s = time.perf_counter() - start
    run_array = runner(compiled)
    feed = inputs.detach().cpu().float().contiguous().numpy()

    def run() -> Tensor:
        return torch.from_numpy(run_array(feed))

    return run, prepare_s, compiled_properties(compiled)
