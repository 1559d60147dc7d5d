"""Segment images with a trained config + checkpoint: label PNGs and colour overlays.

    python tools/infer.py CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu] [--opacity 0.5]

INPUT is an image file, a folder (every image in it and its subfolders, sorted), or a list
file (one image path per line; relative paths are taken from the list file's folder, blank
lines and lines starting with '#' are skipped). Each image, whatever its size or channels
(grayscale, BGRA), runs alone at its own size through the config's test pipeline
(:func:`mmseg_hrplus.apis.inference.segment_images`) and gives:

* ``DIR/labels/<name>.png``: the predicted train ids as a single-channel uint8 PNG of the
  input's size;
* ``DIR/overlays/<name>.png``: the image with the prediction painted over it in the dataset's
  palette (mmseg's ``SegLocalVisualizer``), ``--opacity`` being the weight of the colours.

``<name>`` is the image's path relative to the folder (folder input) or its file name.
A progress bar is shown for more than one image. An image that cannot be read (empty, text,
truncated or corrupted data) or whose smaller side is under 32 pixels is skipped with a line
naming it and why; the run goes on, lists the failures at the end and exits with status 1.
"""
import argparse
import os.path as osp
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
#: The smallest image side segmented: every backbone here has an output stride of 32.
MIN_IMAGE_SIDE = 32


def collect_inputs(source: str) -> Dict[str, Path]:
    """Output name (no extension) -> image path, for an image, a folder or a list file.

    Raises:
        FileNotFoundError: ``source`` does not exist, or a listed image does not.
        ValueError: a folder or list without any image.
    """
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.rglob('*') if p.suffix.lower() in IMAGE_EXTENSIONS)
        names = {str(p.relative_to(path).with_suffix('')): p for p in images}
    elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        names = {path.stem: path}
    elif path.is_file():
        names = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            image = Path(line) if Path(line).is_absolute() else path.parent / line
            if not image.is_file():
                raise FileNotFoundError(f'{source} lists {line}, which is not a file '
                                        f'(looked for {image})')
            name = image.stem
            while name in names:  # same file name in two listed folders
                name += '_'
            names[name] = image
    else:
        raise FileNotFoundError(f'INPUT {source} is neither an image, a folder nor a list file')
    if not names:
        raise ValueError(f'INPUT {source} holds no image with an extension in '
                         f'{IMAGE_EXTENSIONS}')
    return names


def make_visualizer(model, opacity: float):
    """A SegLocalVisualizer with the model's classes and a palette covering every class."""
    from mmseg.visualization import SegLocalVisualizer

    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'opacity={opacity} must be in [0, 1]')
    num_classes = model.decode_head.num_classes
    meta = getattr(model, 'dataset_meta', None) or {}
    classes = list(meta.get('classes') or [])
    palette = [tuple(c) for c in meta.get('palette') or []]
    rng = np.random.RandomState(42)
    while len(palette) < num_classes:  # more classes than the dataset's palette
        palette.append(tuple(int(v) for v in rng.randint(0, 256, 3)))
    classes += [f'class {i}' for i in range(len(classes), len(palette))]
    visualizer = SegLocalVisualizer(name=f'hrplus_infer_{id(model)}', alpha=opacity)
    visualizer.set_dataset_meta(classes=classes[:len(palette)], palette=palette)
    return visualizer


def check_image_size(image: np.ndarray, path) -> None:
    """Refuse images whose smaller side is below :data:`MIN_IMAGE_SIDE`, naming the minimum."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ValueError(f'cannot segment image {path}: it is {width}x{height} pixels; both sides '
                         f'must be at least {MIN_IMAGE_SIDE} (the backbones downsample by 32)')


def run_inference(config: str, checkpoint: str, source: str, out_dir: str,
                  device: str = 'cpu', opacity: float = 0.5, crf: bool = False,
                  failures: Optional[List[Dict[str, str]]] = None) -> List[Dict[str, str]]:
    """Segment every image of ``source``; returns one ``dict(image, label, overlay)`` per image
    with the paths written. ``crf``: refine with the dense CRF (``pip install -e .[crf]``).
    An image that cannot be read or is too small is skipped and appended to ``failures`` as
    ``dict(image, reason)`` (a one-line reason naming the file); the others are still done."""
    failures = [] if failures is None else failures
    from mmengine.utils import ProgressBar
    from mmseg.apis import init_model

    import mmseg_hrplus  # noqa: F401  (registers our components)
    from mmseg_hrplus.apis.inference import as_bgr_image, segment_images

    inputs = collect_inputs(source)
    if crf:
        from mmengine.config import Config

        from mmseg_hrplus.models.segmentors import enable_dense_crf
        config = Config.fromfile(config)
        config.model = enable_dense_crf(config.model)
    model = init_model(config, checkpoint, device=device)
    if model.decode_head.num_classes > 256:
        raise ValueError(f'num_classes={model.decode_head.num_classes}: label PNGs are uint8 '
                         '(at most 256 classes)')
    visualizer = make_visualizer(model, opacity)
    # file= at call time: the default is the sys.stdout of when mmengine was imported
    progress = ProgressBar(len(inputs), file=sys.stdout) if len(inputs) > 1 else None
    written = []
    for name, image_path in inputs.items():
        try:
            image = as_bgr_image(str(image_path))
            check_image_size(image, image_path)
        except (ValueError, OSError) as err:  # unreadable or too small: report, go on
            failures.append(dict(image=str(image_path), reason=str(err)))
            if progress is not None:
                progress.update()
            continue
        result = segment_images(model, image)
        labels = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        label_file = osp.join(out_dir, 'labels', name + '.png')
        overlay_file = osp.join(out_dir, 'overlays', name + '.png')
        mmcv.imwrite(labels, label_file, auto_mkdir=True)
        # the visualizer draws on RGB and writes the file itself (converted back to BGR)
        visualizer.add_datasample(name, mmcv.bgr2rgb(image), data_sample=result, draw_gt=False,
                                  with_labels=False, out_file=overlay_file)
        written.append(dict(image=str(image_path), label=label_file, overlay=overlay_file))
        if progress is not None:
            progress.update()
    if progress is not None:
        print()
    return written


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('input', help='an image, a folder of images or a list file')
    parser.add_argument('--out-dir', default='work_dirs/infer',
                        help='labels/ and overlays/ are written here')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the class colours in the overlays, in [0, 1]')
    parser.add_argument('--crf', action='store_true',
                        help='refine with the dense CRF (DeepLabv2; pip install -e .[crf])')
    args = parser.parse_args(argv)
    failures: List[Dict[str, str]] = []
    written = run_inference(args.config, args.checkpoint, args.input, args.out_dir,
                            args.device, args.opacity, args.crf, failures)
    print(f'{len(written)} image(s): labels in {osp.join(args.out_dir, "labels")}, overlays in '
          f'{osp.join(args.out_dir, "overlays")}')
    if failures:
        print(f'{len(failures)} image(s) failed:', file=sys.stderr)
        for failure in failures:
            print(f'  {failure["reason"]}', file=sys.stderr)
        raise SystemExit(1)
    return written


if __name__ == '__main__':
    main()
