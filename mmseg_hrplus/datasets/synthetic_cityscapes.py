"""A small synthetic street-scene dataset in the Cityscapes folder layout, made on demand.

Used by ``make demo`` (``tools/demo.py``) and the end-to-end tests: nothing is downloaded.
It ships in the package, not in ``tests/``, because it is the demo's data source: the demo is
a user-facing tool that must run from an installed package without the test tree, and a user
can make the same data to try a config or a training change before getting Cityscapes. It
needs only numpy and OpenCV, which mmcv installs already. Each scene has sky,
buildings, vegetation, road, sidewalk, cars, people and poles drawn as simple shapes with
class-typical colours plus texture noise, so a small network learns it in minutes on a CPU but
has to use shape and context (cars and buildings share colours).

Layout written under ``root`` (what mmseg's ``CityscapesDataset`` reads)::

    leftImg8bit/{train,val}/synth/synth_000000_000007_leftImg8bit.png
    gtFine/{train,val}/synth/synth_000000_000007_gtFine_labelTrainIds.png

Labels are Cityscapes train ids (0 road, 1 sidewalk, 2 building, 5 pole, 8 vegetation,
10 sky, 11 person, 13 car).
"""
import json
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np

ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 5, 8, 10, 11, 13
#: Train ids that occur in the synthetic scenes.
SYNTHETIC_CLASSES = (ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR)

# Base RGB colour per class; instances jitter around it.
_BASE_COLOURS = {
    ROAD: (80, 80, 85), SIDEWALK: (170, 140, 150), BUILDING: (120, 100, 90),
    POLE: (60, 60, 60), VEGETATION: (60, 130, 50), SKY: (120, 170, 230),
    PERSON: (200, 150, 120), CAR: (140, 40, 40),
}
_VERSION = 1  # bump when the drawing changes, so stale copies are regenerated


def _jitter(rng: np.random.Generator, colour: Tuple[int, int, int], amount: int) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _fill(img: np.ndarray, label: np.ndarray, mask: np.ndarray, colour: tuple, cls: int):
    img[mask] = colour
    label[mask] = cls


def render_scene(rng: np.random.Generator, height: int, width: int
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Returns:
        image (H, W, 3) uint8 RGB and label (H, W) uint8 of Cityscapes train ids.
    """
    img = np.zeros((height, width, 3), np.uint8)
    label = np.full((height, width), 255, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    horizon = int(height * rng.uniform(0.35, 0.55))

    # sky with a vertical gradient
    sky = yy < horizon
    _fill(img, label, sky, _jitter(rng, _BASE_COLOURS[SKY], 20), SKY)
    img[sky] = np.clip(img[sky].astype(int) + (yy[sky, None] * 40 // height), 0, 255)

    # road trapezoid and sidewalks below the horizon
    ground = yy >= horizon
    _fill(img, label, ground, _jitter(rng, _BASE_COLOURS[SIDEWALK], 15), SIDEWALK)
    centre = width * rng.uniform(0.4, 0.6)
    half_top, half_bottom = width * 0.05, width * rng.uniform(0.45, 0.7)
    t = (yy - horizon) / max(height - horizon, 1)
    road = ground & (np.abs(xx - centre) <= half_top + t * (half_bottom - half_top))
    _fill(img, label, road, _jitter(rng, _BASE_COLOURS[ROAD], 10), ROAD)

    # buildings and trees standing on the horizon
    x = 0
    while x < width:
        w = int(rng.integers(width // 10, width // 4))
        if rng.random() < 0.65:
            top = int(rng.integers(horizon // 6, horizon - 4))
            box = (yy >= top) & (yy < horizon) & (xx >= x) & (xx < x + w)
            _fill(img, label, box, _jitter(rng, _BASE_COLOURS[BUILDING], 30), BUILDING)
            for wy in range(top + 3, horizon - 3, 6):  # windows: texture, still building
                img[wy:wy + 2, x + 2:x + w - 2:5] = _jitter(rng, (40, 40, 60), 10)
        else:
            tree = np.zeros((height, width), np.uint8)
            cy, r = horizon - int(rng.integers(4, horizon // 2 + 5)), int(rng.integers(6, 16))
            cv2.ellipse(tree, (x + w // 2, cy), (w // 2 + 2, r + 6), 0, 0, 360, 1, -1)
            cv2.rectangle(tree, (x + w // 2 - 1, cy), (x + w // 2 + 1, horizon), 1, -1)
            colour = _jitter(rng, _BASE_COLOURS[VEGETATION], 25)
            _fill(img, label, (tree > 0) & (yy < horizon + 2), colour, VEGETATION)
        x += w

    # poles on the sidewalk side
    for _ in range(int(rng.integers(1, 3))):
        left = rng.integers(2, max(3, int(centre - half_bottom * 0.6)))
        right = rng.integers(min(width - 3, int(centre + half_bottom * 0.6)), width - 2)
        px = int(rng.choice([left, right]))
        top = int(rng.integers(horizon // 4, horizon))
        pole = (xx >= px) & (xx < px + 2) & (yy >= top) & (yy < min(height, horizon + height // 4))
        _fill(img, label, pole, _jitter(rng, _BASE_COLOURS[POLE], 10), POLE)

    # cars on the road (bigger when nearer), people on the sidewalks
    for _ in range(int(rng.integers(1, 4))):
        cy = int(rng.integers(horizon + 4, height - 2))
        scale = (cy - horizon) / max(height - horizon, 1)
        cw, ch = int(12 + 60 * scale), int(6 + 26 * scale)
        cx = int(centre + rng.uniform(-0.5, 0.5) * half_bottom * scale)
        colour = _jitter(rng, (140, 40, 40) if rng.random() < 0.5 else (120, 100, 90), 30)
        car = np.zeros((height, width), np.uint8)
        cv2.rectangle(car, (cx - cw // 2, cy - ch), (cx + cw // 2, cy), 1, -1)
        cv2.rectangle(car, (cx - cw // 3, cy - ch - ch // 2), (cx + cw // 3, cy - ch), 1, -1)
        _fill(img, label, car > 0, colour, CAR)
        for wx in (cx - cw // 3, cx + cw // 3):  # wheels
            cv2.circle(img, (wx, cy), max(2, ch // 4), (20, 20, 20), -1)
    for _ in range(int(rng.integers(0, 3))):
        side = rng.choice([-1, 1])
        py = int(rng.integers(horizon + 6, height - 1))
        scale = (py - horizon) / max(height - horizon, 1)
        px = int(np.clip(centre + side * (half_top + scale * (half_bottom - half_top) + 6), 3,
                         width - 4))
        ph, pw = int(10 + 30 * scale), int(3 + 6 * scale)
        person = np.zeros((height, width), np.uint8)
        cv2.ellipse(person, (px, py - ph // 2), (pw // 2 + 1, ph // 2), 0, 0, 360, 1, -1)
        cv2.circle(person, (px, py - ph - 1), max(1, pw // 2), 1, -1)
        _fill(img, label, person > 0, _jitter(rng, _BASE_COLOURS[PERSON], 25), PERSON)

    noise = rng.normal(0, 6, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return img, label


def make_synthetic_cityscapes(root, num_train: int = 40, num_val: int = 10,
                              size: Tuple[int, int] = (128, 256), seed: int = 0
                              ) -> Dict[str, int]:
    """Write the dataset under ``root`` unless an identical copy is already there.

    Args:
        root: output folder (Cityscapes layout, see the module docstring).
        num_train, num_val: images per split.
        size: (height, width) of every image.
        seed: the scenes are a pure function of (seed, split, index).

    Returns:
        The number of images per split.
    """
    root = Path(root)
    spec = dict(version=_VERSION, num_train=num_train, num_val=num_val, size=list(size),
                seed=seed)
    marker = root / 'synthetic.json'
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return dict(train=num_train, val=num_val)
    for split, count, offset in (('train', num_train, 0), ('val', num_val, 100_000)):
        img_dir = root / 'leftImg8bit' / split / 'synth'
        ann_dir = root / 'gtFine' / split / 'synth'
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, offset + i])
            img, label = render_scene(rng, *size)
            stem = f'synth_000000_{i:06d}'
            cv2.imwrite(str(img_dir / f'{stem}_leftImg8bit.png'), img[..., ::-1])
            cv2.imwrite(str(ann_dir / f'{stem}_gtFine_labelTrainIds.png'), label)
    marker.write_text(json.dumps(spec))
    return dict(train=num_train, val=num_val)


def data_root_options(root) -> Dict[str, str]:
    """The config overrides that point a Cityscapes-layout config (the quickstart's) at
    ``root``: ``data_root`` and the three dataloaders' ``dataset.data_root``."""
    root = str(root)
    return {'data_root': root, **{f'{loader}.dataset.data_root': root
                                  for loader in ('train_dataloader', 'val_dataloader',
                                                 'test_dataloader')}}
