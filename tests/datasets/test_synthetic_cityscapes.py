import cv2
import numpy as np

from mmseg_hrplus.datasets.synthetic_cityscapes import (SYNTHETIC_CLASSES,
                                                        make_synthetic_cityscapes)


def test_layout_determinism_and_classes(tmp_path):
    counts = make_synthetic_cityscapes(tmp_path / 'a', num_train=4, num_val=2, size=(64, 128))
    make_synthetic_cityscapes(tmp_path / 'b', num_train=4, num_val=2, size=(64, 128))
    assert counts == dict(train=4, val=2)
    imgs = sorted((tmp_path / 'a' / 'leftImg8bit' / 'train' / 'synth').glob('*_leftImg8bit.png'))
    labels = sorted((tmp_path / 'a' / 'gtFine' / 'train' / 'synth').glob('*_labelTrainIds.png'))
    assert len(imgs) == len(labels) == 4
    seen = set()
    for img_path, label_path in zip(imgs, labels):
        img, label = cv2.imread(str(img_path)), cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 128, 3) and label.shape == (64, 128)
        other = tmp_path / 'b' / img_path.relative_to(tmp_path / 'a')
        assert np.array_equal(img, cv2.imread(str(other)))  # same seed, same scene
        seen |= set(np.unique(label).tolist())
    assert seen <= set(SYNTHETIC_CLASSES) | {255}
    assert len(seen & set(SYNTHETIC_CLASSES)) >= 6  # several classes, not a trivial task
