"""Export a segmentor of ours to ONNX (dynamic batch, height and width) and check it.

The graph is the inference path of mmseg's ``EncoderDecoder``: backbone, [neck,] decode head,
then a bilinear resize of the logits to the input size (what ``decode_head.predict`` does).
Auxiliary heads are not part of it.

    Input  ``input``:  (N, 3, H, W) float32, the image AFTER the config's data preprocessor
                       (BGR->RGB when ``bgr_to_rgb``, minus ``mean``, divided by ``std``).
    Output ``logits``: (N, num_classes, H, W) float32; ``argmax(1)`` gives the train ids.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT out.onnx --shape 512 1024 --verify

Exporter: torch's TorchScript-based exporter (``dynamo=False``), which needs only the
``onnx`` package (``pip install -r requirements/onnx.txt``; onnxruntime for ``--verify``).

Why a plain export can be wrong, and what keeps ours exact: the TorchScript exporter traces
one forward pass, so every size that the Python code turns into a constant (``int(...)`` of a
shape, an ``if`` on shapes) is frozen at the example input. mmseg's HRNet upsamples in its
fusion with ``mmseg.models.utils.Upsample``, which computes ``int(h * scale)``: exported at one
size and run at another, its fusion maps are resized to the example's sizes and back, the output
keeps the right shape but wrong values (seen: 15-19 off on logits of magnitude ~800 for mmseg's
fcn_hr18s exported at 128x128 and run at 128x256). Our HRNet takes every size from the tensors
and, while tracing, always runs mmseg's two-step resize for odd stream sizes (the second step is
an exact identity on even sizes), so one graph is exact at every size; ``--verify`` checks that
on the export size and on a size that is not a multiple of 32.

With ``--openvino`` (``pip install -r requirements/openvino.txt``) the graph is also written as
OpenVINO IR next to the .onnx (``out.xml`` + ``out.bin``, float32, from the .onnx:
:mod:`mmseg_hrplus.deploy.openvino`), and ``--verify`` also runs it in OpenVINO on the CPU,
compiled with explicit properties (``--ov-threads``, precision f32, hint LATENCY), within the
same bound as onnxruntime; the precision, threads and hint OpenVINO reports are printed.

``--openvino --precision int8 --calib DIR_OR_LIST`` also writes ``out.int8.xml`` (+ ``.bin``):
the IR quantized by NNCF post-training quantization (:mod:`mmseg_hrplus.deploy.int8`), calibrated
on the images of ``--calib`` (a folder or a list file) run through the config's test pipeline
and data preprocessor. Compile it with the f32 precision hint (the convolutions run int8).
``--verify`` then also reports the int8 IR's difference from PyTorch and how many convolutions
run int8, without holding it to the f32 bound (its accuracy is measured on a trained model
and real images: tools/analysis_tools/deploy_accuracy.py).
"""
import argparse
from pathlib import Path
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.config import Config

import mmseg_hrplus  # noqa: F401  (registers our models)
from mmseg_hrplus.deploy.onnx_export import (  # noqa: F401  (SegmentorLogits: for tests)
    SegmentorLogits, Shape, export_onnx, verify_onnx)
from mmseg_hrplus.engine.runner import build_config_model


def build_segmentor(config: str, checkpoint: Optional[str] = None,
                    cfg_options: Optional[dict] = None) -> nn.Module:
    """Build ``config``'s segmentor (eval mode, SyncBN as BN, no auxiliary heads) and load
    ``checkpoint`` (strict: every inference weight must be present).

    Raises:
        ValueError: a config whose ``default_scope`` is not 'mmseg' (detectors are not
            exported by this tool) or whose model has no ``decode_head``.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope', 'mmseg')
    if scope != 'mmseg':
        raise ValueError(f"default_scope={scope!r}: export_onnx exports segmentors "
                         f"(default_scope 'mmseg')")
    # no init_weights: nothing is downloaded or initialised
    model = build_config_model(cfg, drop_auxiliary_heads=True)
    if not hasattr(model, 'decode_head'):
        raise ValueError(f'{type(model).__name__} has no decode_head; an EncoderDecoder '
                         'segmentor is needed')
    if checkpoint is not None:
        load_inference_weights(model, checkpoint)
    return model.eval()


def load_inference_weights(model: nn.Module, checkpoint: str) -> None:
    """Load a (runner or plain) checkpoint into ``model``; auxiliary-head weights in the file
    are ignored; any other missing, unexpected or differently shaped entry is an error.

    Raises:
        ValueError: naming the file and up to five of the keys that do not match.
    """
    from mmengine.runner import CheckpointLoader

    state = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()
             if not k.startswith(('auxiliary_head.', 'module.auxiliary_head.'))}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(f'{checkpoint} does not fit the config\'s model: missing keys '
                         f'{missing[:5]} ({len(missing)}), unexpected keys {unexpected[:5]} '
                         f'({len(unexpected)}), shape mismatches {mismatched[:5]} '
                         f'({len(mismatched)})')
    model.load_state_dict(state)


def default_verify_shapes(shape: Shape) -> List[Shape]:
    """The export size and one 8 rows / 4 columns larger: with a multiple-of-32 export size
    that one is not, so the odd-stream-size resize path is checked too."""
    return [tuple(shape), (shape[0] + 8, shape[1] + 4)]


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="a checkpoint file, or 'none' for random weights")
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 1024], metavar=('H', 'W'),
                        help='example input size used for the trace (default 512 1024)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch on the export size and on '
                             'H+8 x W+4')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='--verify fails when max|onnx - torch| > atol + rtol * max|logit|')
    parser.add_argument('--rtol', type=float, default=1e-5)
    parser.add_argument('--openvino', action='store_true',
                        help='also write OpenVINO IR (OUT with .xml/.bin) and, with --verify, '
                             'check it in OpenVINO (f32) too')
    parser.add_argument('--ov-threads', type=int, default=None,
                        help='OpenVINO inference threads for --verify (default: torch\'s)')
    parser.add_argument('--precision', choices=('f32', 'int8'), default='f32',
                        help='int8: also write OUT.int8.xml, quantized on --calib (needs '
                             '--openvino); bf16 is a compile-time hint, not an IR')
    parser.add_argument('--calib', metavar='DIR_OR_LIST',
                        help='calibration images for --precision int8: a folder or a list file')
    args = parser.parse_args(argv)
    if args.precision == 'int8' and not args.openvino:
        parser.error('--precision int8 writes OpenVINO IR: it needs --openvino')
    try:
        from mmseg_hrplus.deploy.precision import (calibration_image_paths,
                                                   check_backend_precision)
        check_backend_precision('openvino', args.precision, args.calib)
        calib_paths = None if args.calib is None else calibration_image_paths(args.calib)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))

    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    segmentor = build_segmentor(args.config, checkpoint)
    export_onnx(segmentor, args.out, tuple(args.shape), args.opset)
    print(f'wrote {args.out} (opset {args.opset}, dynamic batch/height/width)')
    xml = None
    if args.openvino:
        from mmseg_hrplus.deploy.openvino import convert_onnx
        xml = str(Path(args.out).with_suffix('.xml'))
        convert_onnx(args.out, xml)
        print(f'wrote {xml} and {Path(xml).with_suffix(".bin")} (OpenVINO IR, float32)')
    int8_xml = None
    if calib_paths is not None:
        from mmseg_hrplus.deploy.int8 import calibration_arrays, write_int8_ir
        segmentor.cfg = Config.fromfile(args.config)  # its test pipeline, for the calibration
        int8_xml = write_int8_ir(args.out, Path(args.out).with_suffix('.int8.xml'),
                                 calibration_arrays(segmentor, calib_paths))
        print(f'wrote {int8_xml} (OpenVINO IR, int8: calibrated on {len(calib_paths)} '
              f'image(s) of {args.calib})')
    if not args.verify:
        return []
    shapes = default_verify_shapes(tuple(args.shape))
    report = verify_onnx(segmentor, args.out, shapes)
    for r in report:
        r['backend'] = 'onnxruntime'
    if xml is not None:
        from mmseg_hrplus.deploy.openvino import describe_properties, verify_openvino
        ov_report = verify_openvino(segmentor, xml, shapes, threads=args.ov_threads,
                                    precision='f32')
        print(describe_properties(ov_report[0]['properties']))
        for r in ov_report:
            r['backend'] = 'openvino'
        report += ov_report
    if int8_xml is not None:
        from mmseg_hrplus.deploy.openvino import describe_properties, verify_openvino
        int8_report = verify_openvino(segmentor, int8_xml, shapes, threads=args.ov_threads)
        print(describe_properties(int8_report[0]['properties']))
        for r in int8_report:
            print(f"{r['shape'][0]}x{r['shape'][1]}: max |int8 - torch| = "
                  f"{r['max_abs_diff']:.3g} (max |logit| {r['max_abs_logit']:.3g}; int8 is not "
                  'held to the f32 bound)')
    failed = False
    for r in report:
        bound = args.atol + args.rtol * r['max_abs_logit']
        ok = r['max_abs_diff'] <= bound
        failed |= not ok
        print(f"{r['shape'][0]}x{r['shape'][1]}: max |{r['backend']} - torch| = "
              f"{r['max_abs_diff']:.3g} (max |logit| {r['max_abs_logit']:.3g}, bound "
              f"{bound:.3g}) {'OK' if ok else 'FAILED'}")
    if failed:
        raise SystemExit('ONNX verification failed')
    return report


if __name__ == '__main__':
    main()
