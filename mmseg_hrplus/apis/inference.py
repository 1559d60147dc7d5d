"""Inference on whatever image a user has: grayscale, with alpha, any size, mixed sizes.

mmseg's ``inference_model`` already copes with a grayscale array (the data preprocessor's
3-element mean broadcasts the single channel) and with odd sizes (``mode='whole'`` runs the
network on the image as it is; our backbones resize, not assume, between streams). It fails on:

* a 4-channel (BGRA) array: a shape error in the normalisation;
* a file path after any array: it rewrites ``model.cfg.test_pipeline[0]`` to
  ``LoadImageFromNDArray`` in place, so the next call with a path raises ``KeyError: 'img'``;
* a list of images of different sizes: they are stacked into one batch.

:func:`segment_images` avoids the three: every input becomes a 3-channel BGR uint8 array
(:func:`as_bgr_image`), the pipeline is built from a copy of the config, and images run one at
a time. Its results equal ``inference_model``'s where that one works (same pipeline, same
preprocessing; tested). :func:`segment_batch` runs images of one size (video frames) in one
forward pass.
"""
import copy
from pathlib import Path
from typing import List, Sequence, Union

import mmcv
import numpy as np
import torch
from mmengine.dataset import Compose

from ..utils.path_lists import IMAGE_SUFFIXES

ImageInput = Union[str, Path, np.ndarray]
#: File extensions read as images (lower case; anything OpenCV decodes).
IMAGE_EXTENSIONS = IMAGE_SUFFIXES
#: The smallest image side segmented: every backbone here has an output stride of 32.
MIN_IMAGE_SIDE = 32


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; the message names the file and why."""


def read_bgr_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as (H, W, 3) BGR uint8, with one-line errors naming the file.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        UnreadableImageError: the file is empty, or not an image OpenCV can decode (text,
            truncated or corrupted data, an unsupported format).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'image not found: {path}')
    data = path.read_bytes()
    if not data:
        raise UnreadableImageError(f'cannot read image {path}: the file is empty (0 bytes)')
    try:
        image = mmcv.imfrombytes(data, flag='color')
    except Exception as err:  # noqa: BLE001  OpenCV raises cv2.error on some garbage
        reason = ' '.join(str(err).split())[:120]
        raise UnreadableImageError(f'cannot read image {path} ({len(data)} bytes): not a '
                                   f'decodable image ({reason})') from None
    if image is None:
        raise UnreadableImageError(
            f'cannot read image {path} ({len(data)} bytes): not a decodable image (truncated, '
            'corrupted, or not an image at all)')
    return image


def check_image_size(height: int, width: int, what: str) -> None:
    """Refuse an image (or video frames) whose smaller side is under :data:`MIN_IMAGE_SIDE`.

    Raises:
        ValueError: naming ``what`` (e.g. ``'image a.png'``), its size and the minimum (a 1x1
            image raised IndexError deep in the network).
    """
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ValueError(f'cannot segment {what}: it is {width}x{height} pixels; both sides '
                         f'must be at least {MIN_IMAGE_SIDE} (the backbones downsample by 32)')


def as_bgr_image(img: ImageInput) -> np.ndarray:
    """Read or convert ``img`` to a (H, W, 3) BGR array.

    Args:
        img: a file path (read in colour, so grayscale and RGBA files give 3 channels), or an
            array of shape (H, W) or (H, W, 1) (grayscale, replicated to 3 channels),
            (H, W, 3) (BGR, returned as is) or (H, W, 4) (BGRA, alpha dropped).

    Returns:
        (H, W, 3) array of ``img``'s dtype (uint8 for files).

    Raises:
        ValueError: an array of another shape, naming the shape and the accepted ones.
        FileNotFoundError: a path that is not a file.
        UnreadableImageError: a file that cannot be decoded (see :func:`read_bgr_image`).
    """
    if isinstance(img, (str, Path)):
        return read_bgr_image(img)
    if not isinstance(img, np.ndarray):
        raise ValueError(f'img must be a file path or a numpy array, got {type(img).__name__}')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or min(img.shape[:2]) < 1:
        raise ValueError(f'img has shape {img.shape}; expected (H, W), (H, W, 1), (H, W, 3) '
                         'or (H, W, 4) with H, W >= 1')
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _array_pipeline(model: torch.nn.Module) -> Compose:
    """The model's test pipeline without annotations, reading an array (config untouched)."""
    steps = [step for step in copy.deepcopy(list(model.cfg.test_pipeline))
             if step.get('type') != 'LoadAnnotations']
    steps[0]['type'] = 'LoadImageFromNDArray'
    return Compose(steps)


def _test_step(model: torch.nn.Module, pipeline: Compose, images: Sequence[np.ndarray]) -> List:
    """One ``model.test_step`` on (H, W, 3) BGR arrays; returns their ``SegDataSample``s."""
    packed = [pipeline(dict(img=image)) for image in images]
    batch = dict(inputs=[data['inputs'] for data in packed],
                 data_samples=[data['data_samples'] for data in packed])
    with torch.no_grad():
        return model.test_step(batch)


def segment_images(model: torch.nn.Module, imgs: Union[ImageInput, Sequence[ImageInput]]):
    """Segment one image or a list of images of any size and channel layout.

    Args:
        model: a segmentor from ``mmseg.apis.init_model`` (it carries ``model.cfg``).
        imgs: one image or a list; each as accepted by :func:`as_bgr_image`.

    Returns:
        One ``SegDataSample`` (``pred_sem_seg`` of shape (1, H, W) and ``seg_logits`` of shape
        (num_classes, H, W), at the input's own size), or a list of them for a list input.
    """
    is_batch = isinstance(imgs, (list, tuple))
    pipeline = _array_pipeline(model)
    results: List = []
    for img in (imgs if is_batch else [imgs]):
        results += _test_step(model, pipeline, [as_bgr_image(img)])
    return results if is_batch else results[0]


def segment_batch(model: torch.nn.Module, images: Sequence[np.ndarray]) -> List:
    """Segment images of one size (e.g. consecutive video frames) in a single forward pass.

    The logits equal those of :func:`segment_images` on each image alone to float rounding
    (oneDNN blocks a batch differently), so the labels are the same except where the two best
    classes are within that rounding of a tie (tested); a batch does more work per kernel call,
    which pays on small frames and not on large ones (figures: docs/benchmarks.md).

    Args:
        model: a segmentor from ``mmseg.apis.init_model``.
        images: N >= 1 arrays of shape (H, W, 3), BGR, all of the same H and W.

    Returns:
        N ``SegDataSample``s, ``pred_sem_seg`` of shape (1, H, W) each.

    Raises:
        ValueError: no image, an array that is not (H, W, 3), or images of different sizes
            (naming the shapes).
    """
    if len(images) == 0:
        raise ValueError('segment_batch needs at least one image')
    shapes = [getattr(image, 'shape', None) for image in images]
    if any(not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3
           for image in images):
        raise ValueError(f'segment_batch takes (H, W, 3) BGR arrays, got shapes {shapes}')
    if len(set(shapes)) > 1:
        raise ValueError(f'segment_batch takes images of one size, got shapes {shapes}; '
                         'use segment_images for mixed sizes')
    return _test_step(model, _array_pipeline(model), images)


__all__ = [
    'IMAGE_EXTENSIONS', 'MIN_IMAGE_SIDE', 'UnreadableImageError', 'as_bgr_image',
    'check_image_size', 'read_bgr_image', 'segment_batch', 'segment_images'
]
