"""A segmentor's inference graph exported to ONNX, and checked against onnxruntime.

Used by ``tools/deployment/export_onnx.py`` (the command line, with checkpoint loading) and by
``tools/benchmark.py --onnxruntime`` (onnxruntime as a CPU deployment peer). Exporter: torch's
TorchScript-based exporter (``dynamo=False``), which needs only the ``onnx`` package.

The exporter traces one forward pass, so a size the Python code turns into a constant is
frozen at the example input; our HRNet and heads take every size from the tensors while
tracing, so one graph is exact at every input size (see ``tools/deployment/export_onnx.py``).
"""
import inspect
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

Shape = Tuple[int, int]


class SegmentorLogits(nn.Module):
    """The inference graph of an mmseg ``EncoderDecoder``: image -> logits.

    Args:
        segmentor: an ``EncoderDecoder`` (ours or mmseg's parts).
        resize: resize the logits bilinearly to the image size (what ``decode_head.predict``
            does); False gives the decode head's logits, as ``segmentor(x, mode='tensor')``.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, num_classes, H, W)`` (``resize``), else the head's output
        size (``H/4 x W/4`` for HRNetV2).
    """

    def __init__(self, segmentor: nn.Module, resize: bool = True):
        super().__init__()
        self.segmentor = segmentor
        self.resize = resize
        self.align_corners = segmentor.decode_head.align_corners

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor.decode_head(self.segmentor.extract_feat(img))
        if not self.resize:
            return logits
        return F.interpolate(logits, size=img.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)


def export_onnx(segmentor: nn.Module, out: str, shape: Shape = (512, 1024),
                opset: int = 17, resize: bool = True) -> str:
    """Trace ``segmentor``'s inference graph (:class:`SegmentorLogits` with ``resize``) on a
    ``1 x 3 x H x W`` input and write ``out``; returns ``out``.

    Batch, height and width are dynamic axes of the input ``input`` and the output
    ``logits``. The written model is validated with ``onnx.checker``.

    Raises:
        ValueError: ``shape`` is not two positive ints.
    """
    import onnx

    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f'shape={tuple(shape)} must be two positive ints (H, W)')
    graph = SegmentorLogits(segmentor, resize=resize).eval()
    example = torch.rand(1, 3, *shape)
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    with torch.no_grad():
        torch.onnx.export(graph, (example, ), out, opset_version=opset,
                          input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': axes, 'logits': axes},
                          do_constant_folding=True, **_torchscript_exporter())
    onnx.checker.check_model(onnx.load(out))
    return out


def _torchscript_exporter() -> dict:
    """The ``torch.onnx.export`` keyword that selects the TorchScript-based exporter: recent
    torch takes ``dynamo=False`` (its default turned to the dynamo exporter); torch 2.1 has no
    such argument and only that exporter."""
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        return dict(dynamo=False)
    return {}


def onnxruntime_session(path: str, threads: int):
    """An onnxruntime ``InferenceSession`` of ``path``: CPU execution provider, ``threads``
    intra-op threads, one inter-op thread, sequential execution, all graph optimisations."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def verify_onnx(segmentor: nn.Module, onnx_path: str, shapes: Sequence[Shape],
                seed: int = 0) -> List[dict]:
    """Run ``onnx_path`` (exported with ``resize=True``) in onnxruntime (CPU) and the PyTorch
    graph on the same random inputs (:func:`compare_with_pytorch`).

    Returns:
        One ``dict(shape=(H, W), max_abs_diff=..., max_abs_logit=...)`` per shape.

    Raises:
        AssertionError: onnxruntime's logits have another shape than PyTorch's.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    return compare_with_pytorch(segmentor, lambda img: session.run(['logits'],
                                                                   {'input': img})[0],
                                shapes, seed, 'onnxruntime')


def compare_with_pytorch(segmentor: nn.Module, run: Callable[[np.ndarray], np.ndarray],
                         shapes: Sequence[Shape], seed: int = 0,
                         backend: str = 'the runtime') -> List[dict]:
    """Run ``run`` (a runtime's ``(1, 3, H, W)`` float32 array -> logits at the input size)
    and the PyTorch graph (:class:`SegmentorLogits`) on the same random inputs, one per shape.

    Returns:
        One ``dict(shape=(H, W), max_abs_diff=..., max_abs_logit=...)`` per shape.

    Raises:
        AssertionError: ``run``'s logits have another shape than PyTorch's (naming
            ``backend``).
    """
    graph = SegmentorLogits(segmentor).eval()
    generator = torch.Generator().manual_seed(seed)
    report = []
    for h, w in shapes:
        img = torch.randn(1, 3, h, w, generator=generator)
        with torch.no_grad():
            ref = graph(img).numpy()
        out = np.asarray(run(img.numpy()))
        if out.shape != ref.shape:
            raise AssertionError(f'{backend} gave logits of shape {out.shape} for a {h}x{w} '
                                 f'input; PyTorch gives {ref.shape}')
        report.append(dict(shape=(h, w), max_abs_diff=float(np.abs(out - ref).max()),
                           max_abs_logit=float(np.abs(ref).max())))
    return report
