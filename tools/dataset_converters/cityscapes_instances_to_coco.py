"""Convert Cityscapes ``gtFine`` instance-id maps into COCO detection json (8 classes).

    python tools/dataset_converters/cityscapes_instances_to_coco.py CITYSCAPES_ROOT \
        [--splits train val] [--out-dir DIR] [--with-crowd]

Reads ``gtFine/<split>/<city>/*_gtFine_instanceIds.png`` and writes
``<out-dir>/instancesonly_filtered_gtFine_<split>.json``, the file names mmdet's
``cityscapes_detection.py`` expects, usable with mmdet's ``CityscapesDataset`` and
``CocoMetric`` (``data_prefix=dict(img='leftImg8bit/<split>/')``).

Encoding of ``*_instanceIds.png`` (16-bit): a pixel of an instance of class ``c`` holds
``c * 1000 + k``; a pixel of class ``c`` that belongs to no single instance (a group of people,
a row of parked cars, or any "stuff" class) holds the label id ``c`` itself (< 1000).

The 8 instance classes evaluated by Cityscapes, with their label ids (used as COCO
``category_id``): person 24, rider 25, car 26, truck 27, bus 28, train 31, motorcycle 32,
bicycle 33. Caravan (29) and trailer (30) have instances but are ignored in evaluation, so they
are dropped, as are all stuff classes.

Group regions (value < 1000 with an instance-class id): by default they are DROPPED, so every
written annotation is a single object with ``iscrowd=0``. With ``with_crowd=True``
(``--with-crowd``) each such region is written once per image and class with ``iscrowd=1``:
mmdet's ``CocoDataset`` then marks it ignored in training and ``CocoMetric`` does not count
detections inside it as false positives.

Boxes are the tight pixel extent of each mask in COCO ``[x, y, w, h]`` (a one-pixel object is
``w = h = 1``), ``area`` is the mask's pixel count, ``segmentation`` its COCO RLE. Image and
annotation ids start at 1: pycocotools treats a matched ground-truth id of 0 as "unmatched".
"""
import argparse
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: (Cityscapes label id, name) of the 8 evaluated instance classes, in mmdet's class order.
INSTANCE_CLASSES: Tuple[Tuple[int, str], ...] = (
    (24, 'person'), (25, 'rider'), (26, 'car'), (27, 'truck'),
    (28, 'bus'), (31, 'train'), (32, 'motorcycle'), (33, 'bicycle'))
LABEL_ID_TO_NAME: Dict[int, str] = dict(INSTANCE_CLASSES)
#: Cityscapes encodes instance k of class c as c * INSTANCE_OFFSET + k.
INSTANCE_OFFSET = 1000
IMG_SUFFIX = '_leftImg8bit.png'
INST_SUFFIX = '_gtFine_instanceIds.png'


def coco_categories() -> List[dict]:
    """The ``categories`` list of the json: ``[{'id': 24, 'name': 'person'}, ...]``."""
    return [dict(id=label_id, name=name) for label_id, name in INSTANCE_CLASSES]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def annotations_from_instance_ids(inst_ids: np.ndarray, with_crowd: bool = False,
                                  with_masks: bool = True) -> List[dict]:
    """COCO annotations (without ``id``/``image_id``) of one ``*_instanceIds.png`` map.

    Args:
        inst_ids: ``(H, W)`` integer map as stored in ``*_gtFine_instanceIds.png``.
        with_crowd: also emit one ``iscrowd=1`` annotation per instance class that has group
            pixels (value = label id < 1000); dropped otherwise.
        with_masks: add the COCO RLE ``segmentation`` (needs pycocotools).

    Returns:
        One dict per object, sorted by instance id: ``category_id`` (Cityscapes label id),
        ``bbox`` ``[x, y, w, h]`` (floats, tight pixel extent), ``area`` (pixel count),
        ``iscrowd`` and, with masks, ``segmentation``.
    """
    if inst_ids.ndim != 2:
        raise ValueError(f'inst_ids must be a (H, W) map, got shape {inst_ids.shape}')
    annotations = []
    for value in np.unique(inst_ids):
        value = int(value)
        is_group = value < INSTANCE_OFFSET
        label_id = value if is_group else value // INSTANCE_OFFSET
        if label_id not in LABEL_ID_TO_NAME or (is_group and not with_crowd):
            continue
        mask = inst_ids == value
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        x0, y0 = int(cols[0]), int(rows[0])
        ann = dict(
            category_id=label_id,
            bbox=[float(x0), float(y0), float(cols[-1] + 1 - x0), float(rows[-1] + 1 - y0)],
            area=float(mask.sum()),
            iscrowd=int(is_group))
        if with_masks:
            ann['segmentation'] = _rle(mask)
        annotations.append(ann)
    return annotations


def read_instance_ids(path: str) -> np.ndarray:
    """The 16-bit ``*_instanceIds.png`` as an ``(H, W)`` int32 array."""
    import cv2
    inst_ids = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if inst_ids is None:
        raise FileNotFoundError(f'cannot read instance-id map: {path}')
    return inst_ids.astype(np.int32)


def find_frames(root: str, split: str, img_dir: str = 'leftImg8bit',
                gt_dir: str = 'gtFine') -> List[Tuple[str, str]]:
    """``(image file relative to <img_dir>/<split>, instance-id map path)`` for every frame."""
    split_img = osp.join(root, img_dir, split)
    split_gt = osp.join(root, gt_dir, split)
    frames = []
    for img in sorted(glob.glob(osp.join(split_img, '*', '*' + IMG_SUFFIX))):
        rel = osp.relpath(img, split_img)
        inst = osp.join(split_gt, rel[:-len(IMG_SUFFIX)] + INST_SUFFIX)
        if not osp.isfile(inst):
            raise FileNotFoundError(f'{img} has no instance-id map {inst}')
        frames.append((rel, inst))
    if not frames:
        raise FileNotFoundError(f'no *{IMG_SUFFIX} images under {split_img}')
    return frames


def convert_split(root: str, split: str = 'val', img_dir: str = 'leftImg8bit',
                  gt_dir: str = 'gtFine', with_crowd: bool = False,
                  with_masks: bool = True) -> dict:
    """The COCO dict (``images``, ``annotations``, ``categories``) of one Cityscapes split.

    ``images[*].file_name`` is relative to ``<root>/<img_dir>/<split>/`` (``city/frame.png``).
    """
    images, annotations = [], []
    for img_id, (rel, inst_path) in enumerate(find_frames(root, split, img_dir, gt_dir), 1):
        inst_ids = read_instance_ids(inst_path)
        height, width = inst_ids.shape
        images.append(dict(id=img_id, file_name=rel, height=height, width=width))
        for ann in annotations_from_instance_ids(inst_ids, with_crowd, with_masks):
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id, **ann))
    return dict(images=images, annotations=annotations, categories=coco_categories())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Cityscapes gtFine instance ids -> COCO detection json (8 classes)')
    parser.add_argument('root', help='Cityscapes root holding leftImg8bit/ and gtFine/')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        help='splits to convert (default: train val)')
    parser.add_argument('--img-dir', default='leftImg8bit')
    parser.add_argument('--gt-dir', default='gtFine')
    parser.add_argument('-o', '--out-dir', help='output folder (default: <root>/annotations)')
    parser.add_argument('--with-crowd', action='store_true',
                        help='write group regions as iscrowd=1 annotations instead of '
                             'dropping them')
    parser.add_argument('--no-masks', action='store_true', help='omit RLE segmentations')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    args = parse_args(argv)
    out_dir = args.out_dir or osp.join(args.root, 'annotations')
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for split in args.splits:
        coco = convert_split(args.root, split, args.img_dir, args.gt_dir, args.with_crowd,
                             not args.no_masks)
        out = osp.join(out_dir, f'instancesonly_filtered_gtFine_{split}.json')
        with open(out, 'w') as f:
            json.dump(coco, f)
        print(f'{split}: {len(coco["images"])} images, {len(coco["annotations"])} annotations '
              f'-> {out}')
        written.append(out)
    return written


if __name__ == '__main__':
    main()
