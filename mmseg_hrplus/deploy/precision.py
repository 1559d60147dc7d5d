"""Which precision each backend of the tools runs, checked when a tool is set up.

* ``pytorch``: 'f32', or 'bf16' (:func:`mmseg_hrplus.deploy.bf16.bf16_inference`, CPUs with
  native bf16 only);
* ``onnxruntime``: 'f32';
* ``openvino``: 'f32', 'bf16' (OpenVINO's precision hint, CPUs with native bf16 only), or
  'int8' (:func:`mmseg_hrplus.deploy.int8.quantize_openvino` calibrated on images, compiled
  with the f32 hint for the layers that stay in float).

'int8' needs calibration images (``calib``: a folder of images or a list file); no other
precision takes them.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn

from ..utils.path_lists import IMAGE_SUFFIXES, LIST_SUFFIXES, files_under, listed_paths
from ..utils.validation import check_choice
from .bf16 import check_bf16_cpu

#: The precisions the tools know.
PRECISIONS = ('f32', 'bf16', 'int8')
#: The precisions each backend runs.
BACKEND_PRECISIONS = {'pytorch': ('f32', 'bf16'), 'onnxruntime': ('f32', ),
                      'openvino': ('f32', 'bf16', 'int8')}
#: Image files :func:`calibration_image_paths` takes from a folder.
CALIBRATION_IMAGE_SUFFIXES = IMAGE_SUFFIXES


def check_backend_precision(backend: str, precision: str,
                            calib: Optional[Union[str, Path]] = None) -> None:
    """Refuse a combination the tools cannot run, before anything is built.

    Raises:
        ValueError: an unknown ``backend`` or ``precision``; a precision ``backend`` does not
            run (naming the ones it does); bf16 on a CPU without native bf16 (naming its ISA);
            int8 without ``calib``, or ``calib`` with another precision.
    """
    check_choice('backend', backend, tuple(BACKEND_PRECISIONS))
    check_choice('precision', precision, PRECISIONS)
    allowed = BACKEND_PRECISIONS[backend]
    if precision not in allowed:
        by_backend = '; '.join(f'{name}: {", ".join(values)}'
                               for name, values in BACKEND_PRECISIONS.items())
        raise ValueError(f'precision={precision!r} does not exist for backend={backend!r}; '
                         f'allowed: {by_backend}')
    if precision == 'int8' and calib is None:
        raise ValueError("precision='int8' needs calib: a folder of calibration images or a "
                         'list file of them')
    if precision != 'int8' and calib is not None:
        raise ValueError(f"calib is only used by precision='int8'; got precision={precision!r}")
    if precision == 'bf16':
        check_bf16_cpu()


def calibration_image_paths(calib: Union[str, Path]) -> List[Path]:
    """The images of ``calib``: a folder (its images, subfolders included, sorted) or a list
    file (:data:`LIST_SUFFIXES`, one path per line, relative to the list's folder; blank lines
    and '#' comments skipped).

    Raises:
        FileNotFoundError: ``calib`` or a listed image does not exist.
        ValueError: ``calib`` is a file of another kind, or holds no image.
    """
    path = Path(calib)
    if path.is_dir():
        images = files_under(path, CALIBRATION_IMAGE_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        images = [image for _, image in listed_paths(path)]
        for image in images:
            if not image.is_file():
                raise FileNotFoundError(f'calib {calib} lists {image}, which is not a file')
    elif path.is_file():
        raise ValueError(f'calib {calib} must be a folder of images or a list file '
                         f'({", ".join(LIST_SUFFIXES)})')
    else:
        raise FileNotFoundError(f'calib {calib} does not exist (a folder of images or a list '
                                'file)')
    if not images:
        raise ValueError(f'calib {calib} holds no image ({", ".join(CALIBRATION_IMAGE_SUFFIXES)})')
    return images


def inference_segmentor(segmentor: nn.Module, backend: str, precision: str, work_dir: str,
                        calib_paths: Optional[Sequence[Path]] = None,
                        threads: Optional[int] = None) -> Tuple[object, Dict[str, object]]:
    """``segmentor`` (from ``mmseg.apis.init_model``, checked by
    :func:`check_backend_precision`) made ready to run ``backend`` at ``precision``.

    pytorch f32 is ``segmentor`` itself; pytorch bf16 is :func:`~.bf16.bf16_inference` without
    compiling (each image runs at its own size, and every new size would compile again); the
    runtimes are :func:`~.runtime.runtime_segmentor` (exported into ``work_dir``), int8
    calibrated on ``calib_paths`` through the segmentor's own test pipeline.

    Returns:
        The model to call ``test_step`` on, and what it runs with: ``backend``, ``precision``
        and the CPU's ``isa``; for a runtime also what it reads back (OpenVINO: the compiled
        precision hint, threads, performance hint, how many convolutions run int8).
    """
    from ..utils.cpu_info import cpu_info
    from .runtime import runtime_segmentor
    properties: Dict[str, object] = dict(backend=backend, precision=precision)
    if backend == 'pytorch':
        if precision == 'bf16':
            from .bf16 import bf16_inference
            segmentor = bf16_inference(segmentor, compile=False)
        return segmentor, dict(properties, isa=cpu_info()['isa'])
    calibration = None
    if precision == 'int8':
        from .int8 import calibration_arrays
        calibration = calibration_arrays(segmentor, calib_paths or [])
    model = runtime_segmentor(segmentor, backend, work_dir, threads, precision,
                              calibration=calibration)
    properties.update((k, v) for k, v in model.properties.items() if k != 'cpu')
    if precision == 'int8':
        properties['precision'] = f"int8 (compiled hint {model.properties['precision']})"
    properties.setdefault('isa', cpu_info()['isa'])
    return model, properties
