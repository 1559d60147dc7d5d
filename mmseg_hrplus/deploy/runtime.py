"""A segmentor whose network runs in a deployment runtime (onnxruntime or OpenVINO) while
mmseg does the rest, so inference code written for mmseg models (``model.test_step`` on the
test pipeline's output: :mod:`mmseg_hrplus.apis`) runs the exported graph unchanged.

:func:`runtime_segmentor` exports the built segmentor's network (backbone, [neck,] decode head;
:class:`~mmseg_hrplus.deploy.onnx_export.SegmentorLogits` with ``resize=False``: one graph with
dynamic batch, height and width) to ONNX in a folder, and for OpenVINO converts it to IR there;
:class:`RuntimeSegmentor` then runs mmseg's inference around it: the data preprocessor, the
decode head's resize of the logits to the image (``decode_head.predict_by_feat``) and
``postprocess_result``, all from the PyTorch segmentor. So the results are those of
``segmentor.test_step`` up to the runtime's float rounding.

Supported: an mmseg ``EncoderDecoder`` (not a subclass such as ``MSCEncoderDecoder`` or the
dense-CRF segmentor, whose inference differs) in ``test_cfg`` mode 'whole', on the CPU.
"""
import os
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn as nn

from ..utils.validation import check_choice
from .onnx_export import export_onnx, onnxruntime_session

#: Values of ``backend`` that :func:`runtime_segmentor` accepts.
RUNTIME_BACKENDS = ('onnxruntime', 'openvino')
#: The example size the graph is traced at (its sizes are dynamic; see
#: ``tools/deployment/export_onnx.py`` for why our models are exact at every size).
EXPORT_SHAPE = (128, 128)


def check_supported(segmentor: nn.Module, backend: str) -> None:
    """Refuse a segmentor :class:`RuntimeSegmentor` cannot run (see the module notes).

    Raises:
        ValueError: naming ``backend``, what was given and what is supported.
    """
    from mmseg.models import EncoderDecoder
    if type(segmentor) is not EncoderDecoder:
        raise ValueError(f'backend={backend!r} runs an mmseg EncoderDecoder; got '
                         f'{type(segmentor).__name__} (use the pytorch backend)')
    mode = segmentor.test_cfg.get('mode', 'whole')
    if mode != 'whole':
        raise ValueError(f"backend={backend!r} supports test_cfg mode 'whole'; got "
                         f'mode={mode!r} (use the pytorch backend)')


class RuntimeSegmentor:
    """``segmentor``'s inference with its network replaced by ``run``.

    Args:
        segmentor: the PyTorch ``EncoderDecoder`` (from ``mmseg.apis.init_model``: it carries
            ``cfg`` and ``dataset_meta``) whose graph ``run`` runs.
        run: ``(N, 3, H, W)`` float32 array (after the data preprocessor) -> the decode head's
            logits as an array.
        backend: the runtime's name, for reports.
        properties: what the runtime runs with (e.g. OpenVINO's precision, threads, hint).

    Raises:
        ValueError: a segmentor of another type or ``test_cfg`` mode (see the module notes).
    """

    def __init__(self, segmentor: nn.Module, run: Callable[[np.ndarray], np.ndarray],
                 backend: str, properties: Optional[dict] = None):
        check_supported(segmentor, backend)
        self.segmentor = segmentor
        self.run = run
        self.backend = backend
        self.properties = dict(properties or {})
        # what the inference code reads from a model
        self.cfg = segmentor.cfg
        self.dataset_meta = getattr(segmentor, 'dataset_meta', None)
        self.decode_head = segmentor.decode_head

    def test_step(self, data: dict) -> List:
        """Like ``EncoderDecoder.test_step``: ``SegDataSample``s with ``seg_logits`` and
        ``pred_sem_seg`` at each image's original size."""
        with torch.no_grad():
            data = self.segmentor.data_preprocessor(data, False)
            inputs, samples = data['inputs'], data['data_samples']
            metas = [sample.metainfo for sample in samples]
            logits = torch.from_numpy(self.run(inputs.float().cpu().numpy()))
            logits = self.segmentor.decode_head.predict_by_feat(logits, metas)
            return self.segmentor.postprocess_result(logits, samples)


def runtime_segmentor(segmentor: nn.Module, backend: str, work_dir: str,
                      threads: Optional[int] = None, precision: str = 'f32',
                      hint: str = 'LATENCY',
                      calibration: Optional[List[np.ndarray]] = None) -> RuntimeSegmentor:
    """Export ``segmentor``'s network into ``work_dir`` (``model.onnx``, and ``model.xml`` /
    ``.bin`` for OpenVINO) and load it into ``backend``.

    Args:
        segmentor: an mmseg ``EncoderDecoder`` from ``mmseg.apis.init_model``, on the CPU.
        backend: one of :data:`RUNTIME_BACKENDS`.
        work_dir: an existing folder for the exported files.
        threads: intra-op threads of the runtime (default ``torch.get_num_threads()``).
        precision, hint: OpenVINO's precision ('f32', 'bf16' on CPUs with native bf16, or
            'int8': the model quantized on ``calibration`` by
            :func:`mmseg_hrplus.deploy.int8.quantize_openvino`, saved as ``model.xml`` and
            compiled with the f32 hint) and performance hint
            (:func:`mmseg_hrplus.deploy.openvino.compile_model`); onnxruntime runs f32.
        calibration: for 'int8', the float32 ``(N, 3, H, W)`` arrays
            (:func:`mmseg_hrplus.deploy.int8.calibration_arrays`).

    Raises:
        ValueError: a bad ``backend`` (naming the allowed values), or a segmentor
            :class:`RuntimeSegmentor` does not support.
    """
    check_choice('backend', backend, RUNTIME_BACKENDS)
    if precision == 'int8' and backend == 'openvino':
        from .int8 import check_calibration
        calibration = check_calibration(calibration or [])
    threads = torch.get_num_threads() if threads is None else threads
    segmentor = segmentor.eval()
    check_supported(segmentor, backend)  # before the export
    onnx_path = export_onnx(segmentor, os.path.join(work_dir, 'model.onnx'), EXPORT_SHAPE,
                            resize=False)
    if backend == 'onnxruntime':
        import onnxruntime as ort
        session = onnxruntime_session(onnx_path, threads)
        return RuntimeSegmentor(
            segmentor, lambda img: session.run(['logits'], {'input': img})[0], backend,
            dict(onnxruntime=ort.__version__, threads=threads, precision='f32'))
    from .openvino import compile_model, compiled_properties, convert_onnx, runner, save_ir
    xml = os.path.join(work_dir, 'model.xml')
    model = convert_onnx(onnx_path)
    if precision == 'int8':
        from .int8 import quantize_openvino
        model, precision = quantize_openvino(model, calibration), 'f32'
    save_ir(model, xml)
    compiled = compile_model(xml, threads=threads, precision=precision, hint=hint)
    return RuntimeSegmentor(segmentor, runner(compiled), backend, compiled_properties(compiled))
