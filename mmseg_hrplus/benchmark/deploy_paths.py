"""The ways a trained segmentor can be deployed on a CPU, each built from the same
``EncoderDecoder`` and run on the same preprocessed inputs: name -> build function.

Every path is a function from the data preprocessor's output ``(N, 3, H, W)`` float32 to the
decode head's logits ``(N, num_classes, h, w)`` float32 (``segmentor(x, mode='tensor')``), so
that mmseg's resize, crop and argmax (``decode_head.predict_by_feat`` and
``postprocess_result``) run identically after each of them
(:mod:`mmseg_hrplus.benchmark.deploy_accuracy`). The paths, in :data:`PATH_NAMES` order:

* ``pytorch-f32``: the model as loaded, eval mode, float32: mmseg's eager inference, the
  reference of every comparison;
* ``optimized-f32``: :func:`~mmseg_hrplus.deploy.optimize_for_inference` with its defaults
  (BN folding, channels_last, the factorised HRNetV2 head; no ``torch.compile``);
* ``onnxruntime-f32``: our ONNX export (dynamic batch, height and width) in onnxruntime's CPU
  provider;
* ``openvino-f32``: the same export in OpenVINO, precision hint f32 (explicit: OpenVINO picks
  bf16 by itself on CPUs that have it);
* ``openvino-int8``: the export quantised by NNCF
  (:func:`mmseg_hrplus.deploy.int8.quantize_openvino`) on calibration arrays, compiled with
  the f32 hint (the int8 operations run in int8, the rest in f32);
* ``pytorch-bf16``: :func:`mmseg_hrplus.deploy.bf16.bf16_inference` (autocast bf16);
* ``openvino-bf16``: the export compiled with the bf16 precision hint.

A path this CPU cannot run raises :class:`PathNotRunnable` with the reason (bf16 without
AVX512_BF16 or AMX); ``emulate_bf16=True`` runs ``pytorch-bf16`` anyway, for accuracy only: its
speed says nothing about a CPU with native bf16.
"""
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmseg_hrplus.utils.validation import check_choice

#: Every path, in report order; the first is the reference.
PATH_NAMES = ('pytorch-f32', 'optimized-f32', 'onnxruntime-f32', 'openvino-f32',
              'openvino-int8', 'pytorch-bf16', 'openvino-bf16')
REFERENCE_PATH = PATH_NAMES[0]
#: The paths that need calibration arrays.
CALIBRATED_PATHS = ('openvino-int8', )

Logits = Callable[[Tensor], Tensor]


class PathNotRunnable(Exception):
    """This CPU (or this installation) cannot run the path; the message says why."""


@dataclass
class DeployPath:
    """A built path.

    Attributes:
        name: one of :data:`PATH_NAMES`.
        logits: ``(N, 3, H, W)`` float32 (preprocessed) -> ``(N, num_classes, h, w)`` float32.
        precision: what it actually ran ('f32', 'bf16', 'int8 + f32', ...).
        properties: the runtime's own report (OpenVINO's ``compiled_properties``, versions).
        emulated: True when the precision is emulated: its speed is not meaningful.
    """
    name: str
    logits: Logits
    precision: str
    properties: dict = field(default_factory=dict)
    emulated: bool = False


@dataclass
class PathContext:
    """What the builders share: the model, a folder for the export, the threads, the
    calibration images (for int8: never evaluation images) and whether bf16 may be emulated."""
    segmentor: nn.Module
    work_dir: str
    threads: int
    calibration_images: Sequence[str] = ()
    emulate_bf16: bool = False
    _onnx: Optional[str] = None

    def onnx_path(self) -> str:
        """The segmentor's ONNX export (``resize=False``, dynamic sizes), made once."""
        if self._onnx is None:
            from mmseg_hrplus.deploy.onnx_export import export_onnx
            from mmseg_hrplus.deploy.runtime import EXPORT_SHAPE
            self._onnx = export_onnx(self.segmentor, os.path.join(self.work_dir, 'model.onnx'),
                                     EXPORT_SHAPE, resize=False)
        return self._onnx


def check_path_names(names: Sequence[str], argument: str = 'paths') -> List[str]:
    """``names`` as a list if each is one of :data:`PATH_NAMES` and the first is
    :data:`REFERENCE_PATH` (every other path is compared with it), else ``ValueError`` naming
    ``argument`` and the allowed values."""
    names = list(names)
    if not names:
        raise ValueError(f'{argument} is empty; allowed values: '
                         f'{", ".join(map(repr, PATH_NAMES))}')
    for name in names:
        check_choice(argument, name, PATH_NAMES)
    if names[0] != REFERENCE_PATH:
        raise ValueError(f'{argument} must start with {REFERENCE_PATH!r} (the reference every '
                         f'other path is compared with), got {names}')
    if len(set(names)) != len(names):
        raise ValueError(f'{argument} names a path twice: {names}')
    return names


def _module_logits(model: nn.Module) -> Logits:
    def run(inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return model(inputs, mode='tensor').float().contiguous()
    return run


def _array_logits(run_array: Callable[[np.ndarray], np.ndarray]) -> Logits:
    def run(inputs: Tensor) -> Tensor:
        return torch.from_numpy(run_array(inputs.detach().float().contiguous().numpy()))
    return run


def build_pytorch_f32(ctx: PathContext) -> DeployPath:
    return DeployPath('pytorch-f32', _module_logits(ctx.segmentor.eval()), 'f32',
                      dict(torch=torch.__version__))


def build_optimized_f32(ctx: PathContext) -> DeployPath:
    from mmseg_hrplus.deploy.optimize import optimize_for_inference
    return DeployPath('optimized-f32', _module_logits(optimize_for_inference(ctx.segmentor)),
                      'f32', dict(torch=torch.__version__))


def build_onnxruntime_f32(ctx: PathContext) -> DeployPath:
    import onnxruntime

    from mmseg_hrplus.deploy.onnx_export import onnxruntime_session
    session = onnxruntime_session(ctx.onnx_path(), ctx.threads)
    return DeployPath('onnxruntime-f32',
                      _array_logits(lambda a: session.run(['logits'], {'input': a})[0]), 'f32',
                      dict(onnxruntime=onnxruntime.__version__, threads=ctx.threads))


def _openvino_path(name: str, model, ctx: PathContext, precision: str,
                   label: Optional[str] = None) -> DeployPath:
    from mmseg_hrplus.deploy.openvino import compile_model, compiled_properties, runner
    compiled = compile_model(model, threads=ctx.threads, precision=precision)
    properties = compiled_properties(compiled)
    return DeployPath(name, _array_logits(runner(compiled)), label or properties['precision'],
                      properties)


def build_openvino_f32(ctx: PathContext) -> DeployPath:
    from mmseg_hrplus.deploy.openvino import convert_onnx
    return _openvino_path('openvino-f32', convert_onnx(ctx.onnx_path()), ctx, 'f32')


def build_openvino_int8(ctx: PathContext) -> DeployPath:
    if not ctx.calibration_images:
        raise ValueError('openvino-int8 needs calibration_images (not the evaluation images); '
                         'got none')
    try:
        from mmseg_hrplus.deploy.int8 import calibration_arrays, quantize_openvino
    except ImportError as error:
        raise PathNotRunnable(f'int8 quantisation unavailable ({error})') from error
    from mmseg_hrplus.deploy.openvino import convert_onnx
    arrays = calibration_arrays(ctx.segmentor, list(ctx.calibration_images))
    quantized = quantize_openvino(convert_onnx(ctx.onnx_path()), arrays)
    path = _openvino_path('openvino-int8', quantized, ctx, 'f32')
    path.precision = f'int8 + {path.properties["precision"]}'
    path.properties['calibration_images'] = len(arrays)
    return path


def build_pytorch_bf16(ctx: PathContext) -> DeployPath:
    try:
        from mmseg_hrplus.deploy.bf16 import bf16_inference, check_bf16_cpu
    except ImportError as error:
        raise PathNotRunnable(f'bf16 inference unavailable ({error})') from error
    try:
        emulated = check_bf16_cpu(emulate=ctx.emulate_bf16) == 'emulated'
    except ValueError as error:
        raise PathNotRunnable(str(error)) from error
    # compiling an emulated run buys nothing: its speed is not reported as meaningful
    model = bf16_inference(ctx.segmentor, compile=not emulated, emulate=ctx.emulate_bf16)
    return DeployPath('pytorch-bf16', _module_logits(model),
                      'bf16 (emulated)' if emulated else 'bf16', dict(torch=torch.__version__),
                      emulated=emulated)


def build_openvino_bf16(ctx: PathContext) -> DeployPath:
    from mmseg_hrplus.deploy.openvino import check_precision, convert_onnx
    try:
        check_precision('bf16')
    except ValueError as error:
        raise PathNotRunnable(str(error)) from error
    return _openvino_path('openvino-bf16', convert_onnx(ctx.onnx_path()), ctx, 'bf16')


#: name -> build function (``PathContext -> DeployPath``).
BUILDERS: Dict[str, Callable[[PathContext], DeployPath]] = {
    'pytorch-f32': build_pytorch_f32,
    'optimized-f32': build_optimized_f32,
    'onnxruntime-f32': build_onnxruntime_f32,
    'openvino-f32': build_openvino_f32,
    'openvino-int8': build_openvino_int8,
    'pytorch-bf16': build_pytorch_bf16,
    'openvino-bf16': build_openvino_bf16,
}


def build_paths(names: Sequence[str], ctx: PathContext
                ) -> Tuple[Dict[str, DeployPath], Dict[str, str]]:
    """Build each of ``names`` in order: ``(built, not_run)``, ``not_run`` mapping the paths
    that raised :class:`PathNotRunnable` to the reason."""
    built, not_run = {}, {}
    for name in names:
        try:
            built[name] = build_path(name, ctx)
        except PathNotRunnable as reason:
            not_run[name] = str(reason)
    return built, not_run


def build_path(name: str, ctx: PathContext) -> DeployPath:
    """Build the path ``name`` (one of :data:`PATH_NAMES`).

    Raises:
        ValueError: an unknown name (naming the allowed values), or int8 without calibration.
        PathNotRunnable: the CPU or the installation cannot run it (the reason).
    """
    check_choice('path', name, PATH_NAMES)
    return BUILDERS[name](ctx)
