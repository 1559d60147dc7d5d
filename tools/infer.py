"""Segment images and videos with a trained config + checkpoint: labels and colour overlays.

    python tools/infer.py CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu] [--opacity 0.5]
        [--batch-size 4] [--save-labels] [--crf] [--backend {pytorch,onnxruntime,openvino}]
        [--precision {f32,bf16,int8}] [--calib DIR_OR_LIST]

INPUT is an image or video file, a folder (every image and video in it and its subfolders,
sorted), or a list file (``.txt``, ``.lst`` or ``.list``: one path per line; relative paths are
taken from the list file's folder, blank lines and lines starting with '#' are skipped).

Each image, whatever its size or channels (grayscale, BGRA), runs alone at its own size through
the config's test pipeline (:func:`mmseg_hrplus.apis.inference.segment_images`) and gives:

* ``DIR/labels/<name>.png``: the predicted train ids as a single-channel uint8 PNG of the
  input's size;
* ``DIR/overlays/<name>.png``: the image with the prediction painted over it in the dataset's
  palette (:func:`mmseg_hrplus.apis.overlay.overlay_labels`, the blend of mmseg's
  ``SegLocalVisualizer`` bit for bit, also used for videos), ``--opacity`` being the weight of
  the colours.

Each video (:data:`mmseg_hrplus.apis.video.VIDEO_EXTENSIONS`) is decoded with OpenCV and
segmented ``--batch-size`` frames per forward pass (:func:`mmseg_hrplus.apis.video.segment_video`;
the labels are those of one frame at a time, up to float rounding at near-ties) and gives:

* ``DIR/overlays/<name>.<ext>``: the overlaid video, same fps and size as the input (.avi and
  .mkv as MJPG, .mp4/.m4v/.mov as mp4v, other inputs as .mp4);
* with ``--save-labels``: ``DIR/labels/<name>/frame_000000.png``... one label PNG per frame.

``<name>`` is the input's path relative to the folder (folder input) or its file name, without
the extension. Progress is shown: a bar for more than one input, and a frames-per-second line
per video on stderr (a line per tenth of the video when stderr is not a terminal).

``--precision`` (:mod:`mmseg_hrplus.deploy.precision`): f32 (default) on every backend; bf16
with pytorch (autocast) or openvino (its precision hint), on CPUs with native bf16 only; int8
with openvino, quantized on the images of ``--calib`` (a folder or a list file, run through
the config's test pipeline). Other combinations are refused before the model is loaded, and
the precision run and the CPU's ISA are printed.

Bad input gets one line naming the file and why, and the run goes on with the other inputs,
lists the failures at the end and exits with status 1: an image or video that cannot be read
(empty, text, truncated or corrupted data), an image or video frames under 32 pixels a side, a
listed file of another format (the line lists the supported ones), and a video whose frames stop
decoding mid-way (what was decoded before is kept). An INPUT that does not exist, or a file of
an unknown format, is one error line and exit status 1.
"""
import argparse
import os.path as osp
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np

from mmseg_hrplus.apis.inference import IMAGE_EXTENSIONS, check_image_size
from mmseg_hrplus.apis.video import SUPPORTED_FORMATS, VIDEO_EXTENSIONS
from mmseg_hrplus.utils.path_lists import LIST_SUFFIXES, files_under, listed_paths

#: Extensions of list files (one input path per line).
LIST_EXTENSIONS = LIST_SUFFIXES
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


def unsupported_format(path: Path, lists: bool = False) -> str:
    """The one-line error for a file of an unknown format, naming it and the supported ones."""
    supported = SUPPORTED_FORMATS + (f'; list files {" ".join(LIST_EXTENSIONS)}' if lists else '')
    return (f'cannot segment {path}: unsupported format {path.suffix.lower() or "(no extension)"!r}'
            f'; supported formats: {supported}')


def _unique(names: Dict[str, Path], name: str) -> str:
    while name in names:  # same file name in two listed folders, or a.png beside a.mp4
        name += '_'
    return name


def collect_inputs(source: str) -> Dict[str, Path]:
    """Output name (no extension) -> image or video path, for a file, a folder or a list file.

    A folder yields its images and videos (other files are ignored); a list file yields every
    listed file, whatever its format (one of another format fails alone when run).

    Raises:
        FileNotFoundError: ``source`` does not exist, or a listed file does not.
        ValueError: ``source`` is a file of an unknown format (the message lists the supported
            ones), or a folder or list without any input.
    """
    path = Path(source)
    names: Dict[str, Path] = {}
    if path.is_dir():
        for file in files_under(path, MEDIA_EXTENSIONS):
            names[_unique(names, str(file.relative_to(path).with_suffix('')))] = file
    elif path.is_file() and path.suffix.lower() in MEDIA_EXTENSIONS:
        names = {path.stem: path}
    elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        for line, item in listed_paths(path):
            if not item.is_file():
                raise FileNotFoundError(f'{source} lists {line}, which is not a file '
                                        f'(looked for {item})')
            names[_unique(names, item.stem)] = item
    elif path.is_file():
        raise ValueError(unsupported_format(path, lists=True))
    else:
        raise FileNotFoundError(f'INPUT {source} not found: expected an image or video file, '
                                'a folder, or a list file')
    if not names:
        raise ValueError(f'INPUT {source} holds no image or video; supported formats: '
                         f'{SUPPORTED_FORMATS}')
    return names


def _segment_image(model, palette, opacity: float, image_path: Path, name: str,
                   out_dir: str) -> Dict[str, str]:
    """Labels and overlay PNGs of one image; raises ValueError/OSError for a bad one."""
    from mmseg_hrplus.apis.inference import as_bgr_image, segment_images
    from mmseg_hrplus.apis.overlay import overlay_labels
    image = as_bgr_image(str(image_path))
    check_image_size(image.shape[0], image.shape[1], f'image {image_path}')
    result = segment_images(model, image)
    labels = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
    label_file = osp.join(out_dir, 'labels', name + '.png')
    overlay_file = osp.join(out_dir, 'overlays', name + '.png')
    mmcv.imwrite(labels, label_file, auto_mkdir=True)
    mmcv.imwrite(overlay_labels(image, labels, palette, opacity), overlay_file, auto_mkdir=True)
    return dict(image=str(image_path), label=label_file, overlay=overlay_file)


def run_inference(config: str, checkpoint: str, source: Union[str, Dict[str, Path]],
                  out_dir: str, device: str = 'cpu', opacity: float = 0.5, crf: bool = False,
                  failures: Optional[List[Dict[str, str]]] = None, batch_size: int = 4,
                  save_labels: bool = False, backend: str = 'pytorch', precision: str = 'f32',
                  calib: Optional[str] = None) -> List[Dict[str, str]]:
    """Segment every image and video of ``source`` (a path, or :func:`collect_inputs`' result).

    Returns one dict per input done: ``dict(image, label, overlay)`` with the files written for
    an image, ``dict(video, overlay, labels, frames)`` for a video (``labels``: the folder of
    frame PNGs, or None without ``save_labels``). ``crf``: refine with the dense CRF
    (``pip install -e .[crf]``). ``batch_size``: video frames per forward pass. ``backend``:
    'pytorch', or a runtime of :data:`mmseg_hrplus.deploy.runtime.RUNTIME_BACKENDS` (CPU only,
    without ``crf``; see the module notes). ``precision`` and ``calib`` (int8's calibration
    images): :func:`mmseg_hrplus.deploy.precision.check_backend_precision`.
    An input that cannot be read, is too small or of an unknown format is skipped and appended
    to ``failures`` as ``dict(image, reason)`` (a one-line reason naming the file), as is a
    video that stops decoding mid-way (after its decoded frames are written); the others are
    still done.
    """
    failures = [] if failures is None else failures
    from mmseg.apis import init_model

    from mmseg_hrplus.apis.overlay import check_opacity
    from mmseg_hrplus.apis.video import check_batch_size
    from mmseg_hrplus.deploy.precision import calibration_image_paths, check_backend_precision

    check_batch_size(batch_size)
    check_opacity(opacity)
    check_backend_precision(backend, precision, calib)
    calib_paths = None if calib is None else calibration_image_paths(calib)
    if (backend != 'pytorch' or precision != 'f32') and (crf or device != 'cpu'):
        at = '' if precision == 'f32' else f' with precision={precision!r}'
        raise ValueError(f'backend={backend!r}{at} runs on the CPU without the dense CRF; got '
                         f'device={device!r}, crf={crf}')
    inputs = collect_inputs(source) if isinstance(source, str) else source
    if crf:
        from mmengine.config import Config

        from mmseg_hrplus.models.segmentors import enable_dense_crf
        config = Config.fromfile(config)
        config.model = enable_dense_crf(config.model)
    model = init_model(config, checkpoint, device=device)
    if model.decode_head.num_classes > 256:
        raise ValueError(f'num_classes={model.decode_head.num_classes}: label PNGs are uint8 '
                         '(at most 256 classes)')
    with tempfile.TemporaryDirectory(prefix='hrplus_infer_') as export_dir:
        if backend != 'pytorch' or precision != 'f32':
            from mmseg_hrplus.deploy.precision import inference_segmentor
            model, properties = inference_segmentor(model, backend, precision, export_dir,
                                                    calib_paths)
            print(f'backend {backend}: ' + ', '.join(f'{k} {v}' for k, v in properties.items()
                                                     if k != 'backend'))
        return _run_inputs(model, inputs, out_dir, opacity, failures, batch_size, save_labels)


def _run_inputs(model, inputs: Dict[str, Path], out_dir: str, opacity: float,
                failures: List[Dict[str, str]], batch_size: int,
                save_labels: bool) -> List[Dict[str, str]]:
    """The loop of :func:`run_inference` over the inputs with a loaded ``model``."""
    from mmengine.utils import ProgressBar

    from mmseg_hrplus.apis.overlay import class_palette
    from mmseg_hrplus.apis.video import overlay_video_path, segment_video

    _, palette = class_palette(model)
    # file= at call time: the default is the sys.stdout of when mmengine was imported
    progress = ProgressBar(len(inputs), file=sys.stdout) if len(inputs) > 1 else None
    written = []
    for name, path in inputs.items():
        suffix = path.suffix.lower()
        try:
            if suffix in VIDEO_EXTENSIONS:
                labels_dir = osp.join(out_dir, 'labels', name) if save_labels else None
                result = segment_video(
                    model, path, overlay_video_path(path, osp.join(out_dir, 'overlays', name)),
                    labels_dir, batch_size=batch_size, opacity=opacity)
                written.append(dict(video=str(path), overlay=str(result.overlay),
                                    labels=labels_dir, frames=result.frames))
                if result.error is not None:
                    failures.append(dict(image=str(path), reason=result.error))
            elif suffix in IMAGE_EXTENSIONS:
                written.append(_segment_image(model, palette, opacity, path, name, out_dir))
            else:
                failures.append(dict(image=str(path), reason=unsupported_format(path)))
        except (ValueError, OSError) as err:  # unreadable or too small: report, go on
            failures.append(dict(image=str(path), reason=str(err)))
        if progress is not None:
            progress.update()
    if progress is not None:
        print()
    return written


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('input', help='an image or video, a folder of them or a list file')
    parser.add_argument('--out-dir', default='work_dirs/infer',
                        help='labels/ and overlays/ are written here')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the class colours in the overlays, in [0, 1]')
    parser.add_argument('--batch-size', type=int, default=4,
                        help='video frames per forward pass (default 4; the labels are those '
                        'of one frame at a time, up to float rounding at near-ties)')
    parser.add_argument('--save-labels', action='store_true',
                        help='also write one label PNG per video frame (images always get one)')
    parser.add_argument('--crf', action='store_true',
                        help='refine with the dense CRF (DeepLabv2; pip install -e .[crf])')
    parser.add_argument('--backend', choices=('pytorch', 'onnxruntime', 'openvino'),
                        default='pytorch',
                        help='run the network in PyTorch (default), or export it on the fly '
                             'and run it in onnxruntime or OpenVINO (CPU; see --precision)')
    parser.add_argument('--precision', choices=('f32', 'bf16', 'int8'), default='f32',
                        help='f32 (default); bf16 (pytorch or openvino, CPUs with native '
                             'bf16); int8 (openvino, needs --calib)')
    parser.add_argument('--calib', metavar='DIR_OR_LIST',
                        help='calibration images for --precision int8: a folder or a list file')
    args = parser.parse_args(argv)
    try:  # refused combinations: before anything is loaded
        from mmseg_hrplus.deploy.precision import check_backend_precision
        check_backend_precision(args.backend, args.precision, args.calib)
    except ValueError as err:
        parser.error(str(err))
    if args.batch_size < 1:
        parser.error(f'--batch-size {args.batch_size}: must be at least 1')
    try:
        inputs = collect_inputs(args.input)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        raise SystemExit(1)
    failures: List[Dict[str, str]] = []
    written = run_inference(args.config, args.checkpoint, inputs, args.out_dir, args.device,
                            args.opacity, args.crf, failures, args.batch_size, args.save_labels,
                            args.backend, args.precision, args.calib)
    images = sum('image' in entry for entry in written)
    print(f'{images} image(s), {len(written) - images} video(s): labels in '
          f'{osp.join(args.out_dir, "labels")}, overlays in {osp.join(args.out_dir, "overlays")}')
    if failures:
        print(f'{len(failures)} input(s) failed:', file=sys.stderr)
        for failure in failures:
            print(f'  {failure["reason"]}', file=sys.stderr)
        raise SystemExit(1)
    return written


if __name__ == '__main__':
    main()
