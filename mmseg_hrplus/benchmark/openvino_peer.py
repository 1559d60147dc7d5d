"""OpenVINO as a peer in the benchmark: our model exported to ONNX, converted to OpenVINO and
compiled for the CPU with explicit properties (:func:`mmseg_hrplus.deploy.openvino.compile_model`:
``threads`` inference threads, precision f32, hint LATENCY), like the onnxruntime peer
(:mod:`.onnxruntime_peer`)."""
import os
import tempfile
import time
from typing import Callable, Tuple

import torch
import torch.nn as nn
from torch import Tensor


def openvino_infer_fn(model: nn.Module, inputs: Tensor, threads: int, precision: str = 'f32',
                      hint: str = 'LATENCY') -> Tuple[Callable[[], Tensor], float, dict]:
    """``model`` (an mmseg ``EncoderDecoder``) exported at ``inputs``' size
    (``resize=False``: the ``mode='tensor'`` logits), converted and compiled.

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
        compiled = compile_model(convert_onnx(path), threads=threads, precision=precision,
                                 hint=hint)
    prepare_s = time.perf_counter() - start
    run_array = runner(compiled)
    feed = inputs.detach().cpu().float().contiguous().numpy()

    def run() -> Tensor:
        return torch.from_numpy(run_array(feed))

    return run, prepare_s, compiled_properties(compiled)
