"""onnxruntime as a peer in the benchmark: our model exported to ONNX, run on the CPU.

onnxruntime is the usual way to deploy a segmentor on a CPU, so it is the speed to beat: the
model is exported with :func:`mmseg_hrplus.deploy.onnx_export.export_onnx` (the graph of
``model(x, mode='tensor')``: backbone and decode head logits, no resize) into a temporary
file and loaded into :func:`~mmseg_hrplus.deploy.onnx_export.onnxruntime_session` (the CPU
execution provider, ``threads`` intra-op threads, all graph optimisations), the session
``tools/infer.py --backend onnxruntime`` runs too.
"""
import os
import tempfile
import time
from typing import Callable, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmseg_hrplus.deploy.onnx_export import onnxruntime_session

__all__ = ['onnxruntime_infer_fn', 'onnxruntime_session']


def onnxruntime_infer_fn(model: nn.Module, inputs: Tensor, threads: int
                         ) -> Tuple[Callable[[], Tensor], float]:
    """``model`` (an mmseg ``EncoderDecoder``, e.g. one from ``optimize_for_inference``
    without ``compile``) exported at ``inputs``' size and loaded into
    :func:`~mmseg_hrplus.deploy.onnx_export.onnxruntime_session`.

    Returns:
        A function running the session on ``inputs`` (the numpy copy made once, outside the
        calls) and returning the logits as a tensor ``(N, num_classes, h, w)``, like
        ``model(inputs, mode='tensor')``; and the seconds the export and the session creation
        took.
    """
    from mmseg_hrplus.deploy.onnx_export import export_onnx
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='hrplus_bench_') as tmp:
        path = export_onnx(model, os.path.join(tmp, 'model.onnx'), tuple(inputs.shape[2:]),
                           resize=False)
        session = onnxruntime_session(path, threads)  # reads the file: it may go now
    prepare_s = time.perf_counter() - start
    feed = {'input': inputs.detach().cpu().float().contiguous().numpy()}

    def run() -> Tensor:
        return torch.from_numpy(session.run(['logits'], feed)[0])

    return run, prepare_s
