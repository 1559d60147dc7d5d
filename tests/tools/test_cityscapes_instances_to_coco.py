"""tools/dataset_converters/cityscapes_instances_to_coco.py on synthetic maps and the real frame."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

REPO_ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location(
    'cityscapes_instances_to_coco',
    REPO_ROOT / 'tools' / 'dataset_converters' / 'cityscapes_instances_to_coco.py')
cs2coco = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cs2coco)

FRAME = 'frankfurt_000000_000294'
# The shared frame (downscaled to 256x128) holds 4 people and 3 cars, no group regions.
EXPECTED_COUNTS = {24: 4, 26: 3}


def test_synthetic_map_instances_crowd_and_ignored_classes():
    ids = np.full((20, 30), 7, dtype=np.int32)       # road (stuff)
    ids[2:5, 3:9] = 26001                            # car #1: x 3..8, y 2..4
    ids[10, 20] = 24000                              # person #0, one pixel
    ids[12:14, 0:2] = 26000                          # car #0
    ids[15:20, 25:30] = 26                           # a group of cars (crowd)
    ids[0:2, 0:2] = 29001                            # caravan: not evaluated
    ids[6:8, 10:12] = 24                             # a group of people (crowd)
    anns = cs2coco.annotations_from_instance_ids(ids)
    assert [(a['category_id'], a['bbox'], a['area'], a['iscrowd']) for a in anns] == [
        (24, [20.0, 10.0, 1.0, 1.0], 1.0, 0),
        (26, [0.0, 12.0, 2.0, 2.0], 4.0, 0),
        (26, [3.0, 2.0, 6.0, 3.0], 18.0, 0),
    ]
    with_crowd = cs2coco.annotations_from_instance_ids(ids, with_crowd=True, with_masks=False)
    crowd = [(a['category_id'], a['bbox'], a['area']) for a in with_crowd if a['iscrowd']]
    assert crowd == [(24, [10.0, 6.0, 2.0, 2.0], 4.0), (26, [25.0, 15.0, 5.0, 5.0], 25.0)]
    assert all('segmentation' not in a for a in with_crowd)
    # The RLE decodes to exactly the instance's pixels.
    assert np.array_equal(mask_utils.decode(anns[2]['segmentation']), (ids == 26001))
    with pytest.raises(ValueError, match=r'inst_ids must be a \(H, W\) map'):
        cs2coco.annotations_from_instance_ids(ids[None])


def test_real_frame(cityscapes_sample, tmp_path):
    written = cs2coco.main([str(cityscapes_sample), '--splits', 'val', '-o', str(tmp_path)])
    assert written == [str(tmp_path / 'instancesonly_filtered_gtFine_val.json')]
    coco_dict = json.loads((tmp_path / 'instancesonly_filtered_gtFine_val.json').read_text())
    assert coco_dict['categories'] == [
        {'id': i, 'name': n} for i, n in [(24, 'person'), (25, 'rider'), (26, 'car'),
                                          (27, 'truck'), (28, 'bus'), (31, 'train'),
                                          (32, 'motorcycle'), (33, 'bicycle')]]
    assert coco_dict['images'] == [dict(id=1, file_name=f'frankfurt/{FRAME}_leftImg8bit.png',
                                        height=128, width=256)]
    anns = coco_dict['annotations']
    assert [a['id'] for a in anns] == list(range(1, len(anns) + 1))

    # Per-class counts, recomputed independently from the raw map.
    ids = cs2coco.read_instance_ids(
        str(cityscapes_sample / 'gtFine' / 'val' / 'frankfurt' / f'{FRAME}_gtFine_instanceIds.png'))
    instance_values = np.unique(ids[ids >= 1000])
    expected = {}
    for v in instance_values:
        if v // 1000 in (24, 25, 26, 27, 28, 31, 32, 33):
            expected[int(v // 1000)] = expected.get(int(v // 1000), 0) + 1
    counts = {}
    for a in anns:
        counts[a['category_id']] = counts.get(a['category_id'], 0) + 1
    assert counts == expected
    assert counts == EXPECTED_COUNTS

    # Box sanity: inside the image, tight around the mask, consistent with the area.
    for a in anns:
        x, y, w, h = a['bbox']
        assert a['iscrowd'] == 0
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= 256 and y + h <= 128
        assert 1 <= a['area'] <= w * h
        assert list(mask_utils.toBbox(a['segmentation'])) == a['bbox']
        assert float(mask_utils.area(a['segmentation'])) == a['area']

    # pycocotools and mmdet's CityscapesDataset read it.
    coco = COCO(str(tmp_path / 'instancesonly_filtered_gtFine_val.json'))
    assert len(coco.getAnnIds()) == len(anns)
    from mmdet.datasets import CityscapesDataset
    ds = CityscapesDataset(
        data_root=str(cityscapes_sample),
        ann_file=str(tmp_path / 'instancesonly_filtered_gtFine_val.json'),
        data_prefix=dict(img='leftImg8bit/val/'), pipeline=[], test_mode=True)
    info = ds[0]
    assert info['img_path'].endswith(f'{FRAME}_leftImg8bit.png')
    assert len(info['instances']) == len(anns)
