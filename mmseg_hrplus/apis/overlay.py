"""Colour overlays of predicted labels: the model's palette and a vectorised blend.

:func:`overlay_labels` paints a label map over a BGR image exactly as mmseg's
``SegLocalVisualizer`` does with ``with_labels=False`` (``image * (1 - opacity) + colour *
opacity``, truncated to uint8; tested bit for bit), in one indexing step instead of one mask per
class, so it is cheap enough for every frame of a video.
"""
from typing import List, Tuple

import numpy as np
import torch


def class_palette(model: torch.nn.Module) -> Tuple[List[str], List[Tuple[int, int, int]]]:
    """Class names and RGB colours covering every class of ``model``.

    Taken from ``model.dataset_meta`` (the checkpoint's ``meta.dataset_meta``); classes beyond
    the dataset's palette get seeded random colours (the same on every call) and the names
    ``'class <i>'``.

    Returns:
        ``(classes, palette)``, both of length ``model.decode_head.num_classes`` or longer if the
        dataset lists more classes.
    """
    num_classes = model.decode_head.num_classes
    meta = getattr(model, 'dataset_meta', None) or {}
    classes = list(meta.get('classes') or [])
    palette = [tuple(int(v) for v in colour) for colour in meta.get('palette') or []]
    rng = np.random.RandomState(42)
    while len(palette) < num_classes:  # more classes than the dataset's palette
        palette.append(tuple(int(v) for v in rng.randint(0, 256, 3)))
    classes += [f'class {i}' for i in range(len(classes), len(palette))]
    return classes[:len(palette)], palette


def check_opacity(opacity: float) -> None:
    """Raise ``ValueError`` naming ``opacity`` unless it is in [0, 1]."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'opacity={opacity} must be in [0, 1]')


def overlay_labels(image: np.ndarray, labels: np.ndarray, palette, opacity: float) -> np.ndarray:
    """Paint ``labels`` over ``image`` in ``palette``'s colours.

    Args:
        image: (H, W, 3) uint8 BGR image.
        labels: (H, W) integer label map; labels outside the palette are painted black, as
            mmseg's visualizer does.
        palette: sequence of RGB colours, one per class (see :func:`class_palette`).
        opacity: weight of the colours, in [0, 1].

    Returns:
        (H, W, 3) uint8 BGR image, ``image * (1 - opacity) + colour * opacity`` truncated.

    Raises:
        ValueError: ``opacity`` outside [0, 1], or ``labels`` not of ``image``'s size.
    """
    check_opacity(opacity)
    if labels.shape != image.shape[:2]:
        raise ValueError(f'labels of shape {labels.shape} do not match the image of shape '
                         f'{image.shape}')
    colours = np.zeros((len(palette) + 1, 3), np.uint8)  # last row: labels outside the palette
    colours[:len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]  # RGB -> BGR
    index = np.where((labels >= 0) & (labels < len(palette)), labels, len(palette))
    return (image * (1 - opacity) + colours[index] * opacity).astype(np.uint8)


__all__ = ['check_opacity', 'class_palette', 'overlay_labels']
