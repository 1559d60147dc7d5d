"""A segmentor's ONNX export (:mod:`.onnx_export`) as an OpenVINO model, compiled for the CPU
with explicit properties, and checked against PyTorch.

Needs the optional extra ``openvino`` (``pip install -r requirements/openvino.txt``).

* :func:`convert_onnx` reads our ONNX graph with ``ov.convert_model`` and, given a path, writes
  the IR (``.xml`` + ``.bin``) with ``ov.save_model`` (uncompressed: weights stay float32);
* :func:`compile_model` compiles it with the inference threads, the precision hint and the
  performance hint set explicitly. The precision is always set: without it OpenVINO's CPU
  plugin silently runs bf16 on CPUs with AVX512_BF16 or AMX (logits 0.2-0.4 relative off on
  random weights, issue 22), so an f32 request must say so. ``'bf16'`` is accepted only where
  the CPU has native bf16 (:data:`mmseg_hrplus.utils.cpu_info.BF16_FLAGS`): elsewhere OpenVINO
  accepts the hint and runs something else, so it is refused before compiling;
* :func:`compiled_properties` reads back what the compiled model uses (``get_property``), with
  the CPU it runs on;
* :func:`verify_openvino` compares it with PyTorch like
  :func:`~mmseg_hrplus.deploy.onnx_export.verify_onnx` does for onnxruntime.
"""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from ..utils.cpu_info import cpu_flags, cpu_info
from ..utils.validation import check_choice, check_int
from .bf16 import bf16_refusal
from .onnx_export import Shape, compare_with_pytorch

#: Precision hints accepted by :func:`compile_model`.
PRECISIONS = ('f32', 'bf16')
#: OpenVINO's performance hints.
PERFORMANCE_HINTS = ('LATENCY', 'THROUGHPUT', 'CUMULATIVE_THROUGHPUT')

PathLike = Union[str, Path]


def convert_onnx(onnx_path: PathLike, xml_path: Optional[PathLike] = None):
    """Read ``onnx_path`` (from :func:`~mmseg_hrplus.deploy.onnx_export.export_onnx`) into an
    ``openvino.Model``; with ``xml_path``, also write it there (and the weights to the ``.bin``
    beside it) as float32 IR.

    Raises:
        ValueError: ``xml_path`` does not end in '.xml'.
    """
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if xml_path is not None:
        if Path(xml_path).suffix != '.xml':
            raise ValueError(f"xml_path={str(xml_path)!r} must end in '.xml' (the weights go "
                             "to the '.bin' beside it)")
        ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return model


def check_precision(precision: str, flags: Optional[set] = None) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` and the CPU (``flags``, default this
    machine's) can run it natively, else ``ValueError`` naming the argument and the values
    allowed on this CPU."""
    check_choice('precision', precision, PRECISIONS)
    flags = cpu_flags() if flags is None else flags
    refusal = bf16_refusal(flags) if precision == 'bf16' else None
    if refusal is not None:
        raise ValueError(f"{refusal}; allowed values here: 'f32'")
    return precision


def compile_model(model, threads: Optional[int] = None, precision: str = 'f32',
                  hint: str = 'LATENCY', device: str = 'CPU'):
    """Compile ``model`` (an ``openvino.Model``, or a ``.xml``/``.onnx`` path) with explicit
    properties.

    Args:
        model: what to compile.
        threads: ``INFERENCE_NUM_THREADS``; default ``torch.get_num_threads()`` (the threads
            the PyTorch paths it is compared with use).
        precision: ``INFERENCE_PRECISION_HINT``, one of :data:`PRECISIONS`; always set
            (see the module notes). 'bf16' only on CPUs with native bf16.
        hint: ``PERFORMANCE_HINT``, one of :data:`PERFORMANCE_HINTS`.
        device: the OpenVINO device; only 'CPU' (what the precision check knows about).

    Returns:
        An ``openvino.CompiledModel``.

    Raises:
        ValueError: a bad argument, naming it and the allowed values (before compiling).
    """
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    check_choice('device', device, ('CPU', ))
    threads = torch.get_num_threads() if threads is None else check_int('threads', threads)
    check_choice('hint', hint, PERFORMANCE_HINTS)
    check_precision(precision)
    if isinstance(model, (str, Path)):
        model = str(model)
    config = {props.inference_num_threads: threads,
              hints.inference_precision: getattr(ov.Type, precision),
              hints.performance_mode: getattr(hints.PerformanceMode, hint)}
    return ov.Core().compile_model(model, device, config)


def compiled_properties(compiled) -> Dict[str, object]:
    """What ``compiled`` (from :func:`compile_model`) actually runs with, read back with
    ``get_property``: ``precision`` ('f32', 'bf16', ...), ``threads``, ``hint``, and the
    ``openvino`` version, the CPU's ``isa`` and its one-line ``cpu`` summary."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    info = cpu_info()
    return dict(precision=compiled.get_property(hints.inference_precision).get_type_name(),
                threads=int(compiled.get_property(props.inference_num_threads)),
                hint=str(compiled.get_property(hints.performance_mode)).split('.')[-1],
                openvino=ov.__version__.split('-')[0], isa=info['isa'], cpu=info['summary'])


def describe_properties(properties: Dict[str, object]) -> str:
    """One line: ``'OpenVINO 2026.4.1: precision f32, 2 threads, hint LATENCY (AVX2 CPU)'``."""
    return (f"OpenVINO {properties['openvino']}: precision {properties['precision']}, "
            f"{properties['threads']} threads, hint {properties['hint']} "
            f"({properties['isa']} CPU)")


def runner(compiled) -> Callable[[np.ndarray], np.ndarray]:
    """A function running ``compiled`` on a ``(N, 3, H, W)`` float32 array and returning its
    first output (the logits) as an array."""
    request = compiled.create_infer_request()

    def run(img: np.ndarray) -> np.ndarray:
        # share_outputs=False: a copy; a shared output is the request's memory, which the next
        # call overwrites (the runtime segmentor keeps a batch's logits while the next runs)
        return request.infer({0: np.ascontiguousarray(img, dtype=np.float32)},
                             share_outputs=False)[0]

    return run


def verify_openvino(segmentor: nn.Module, model, shapes: Sequence[Shape], seed: int = 0,
                    **compile_kwargs) -> List[dict]:
    """Compile ``model`` (a ``.xml``/``.onnx`` path or an ``openvino.Model`` exported with
    ``resize=True``) with :func:`compile_model` (``compile_kwargs``) and compare it with the
    PyTorch graph on the same random inputs, like ``verify_onnx``.

    Returns:
        One ``dict(shape=(H, W), max_abs_diff=..., max_abs_logit=...)`` per shape, each also
        with the ``properties`` the model was compiled with (:func:`compiled_properties`).
    """
    compiled = compile_model(model, **compile_kwargs)
    properties = compiled_properties(compiled)
    report = compare_with_pytorch(segmentor, runner(compiled), shapes, seed, 'OpenVINO')
    for r in report:
        r['properties'] = properties
    return report
