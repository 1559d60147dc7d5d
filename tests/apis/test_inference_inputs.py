"""Item 4 of issue 7: grayscale and odd-sized images through the inference API, with our
config (HRNet-W18-small + FCN quickstart): mmseg's init_model/inference_model, and
mmseg_hrplus.apis.inference.segment_images for what mmseg's does not handle (4 channels, a
file after an array, mixed sizes)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.apis import inference_model, init_model

from mmseg_hrplus.apis.inference import as_bgr_image, segment_images

CONFIG = Path(__file__).resolve().parents[2] / 'configs/quickstart/hrnet_w18s_synthetic.py'
NUM_CLASSES = 19
SIZES = [(61, 97), (61, 97), (61, 97), (33, 17), (1, 1)]


@pytest.fixture(scope='module')
def outcome(tmp_path_factory):
    torch.manual_seed(0)
    model = init_model(Config.fromfile(str(CONFIG)), None, device='cpu')
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (61, 97), np.uint8)
    bgra = rng.integers(0, 256, (61, 97, 4), np.uint8)
    gray_png = tmp_path_factory.mktemp('img') / 'gray.png'
    cv2.imwrite(str(gray_png), gray)  # a 1-channel PNG
    ours = segment_images(model, [bgra, gray_png, gray, bgra[:33, :17, :3].copy(),
                                  bgra[:1, :1, :3].copy()])
    pipeline_after_ours = [step['type'] for step in model.cfg.test_pipeline]
    theirs = dict(gray=inference_model(model, gray),
                  gray1=inference_model(model, gray[..., None]),
                  bgr=inference_model(model, bgra[..., :3].copy()))
    return dict(ours=ours, theirs=theirs, pipeline_after_ours=pipeline_after_ours)


def check(result, size):
    assert tuple(result.pred_sem_seg.data.shape) == (1, *size)
    assert tuple(result.seg_logits.data.shape) == (NUM_CLASSES, *size)
    assert torch.isfinite(result.seg_logits.data).all()


@pytest.mark.parametrize('kind', ['gray', 'gray1', 'bgr'])
def test_mmseg_inference_model_takes_grayscale_and_odd_sizes(outcome, kind):
    check(outcome['theirs'][kind], (61, 97))


def test_every_input_gives_a_prediction_of_its_own_size(outcome):
    assert len(outcome['ours']) == len(SIZES)
    for result, size in zip(outcome['ours'], SIZES):
        check(result, size)


def test_grayscale_file_array_and_mmseg_agree(outcome):
    ours_file, ours_array = outcome['ours'][1], outcome['ours'][2]
    assert torch.equal(ours_file.seg_logits.data, ours_array.seg_logits.data)
    for kind in ('gray', 'gray1'):  # mmseg's broadcast of 1 channel == 3 equal channels
        assert torch.equal(ours_array.seg_logits.data, outcome['theirs'][kind].seg_logits.data)


def test_alpha_channel_is_dropped(outcome):
    assert torch.equal(outcome['ours'][0].seg_logits.data,
                       outcome['theirs']['bgr'].seg_logits.data)


def test_segment_images_leaves_the_models_config_alone(outcome):
    assert outcome['pipeline_after_ours'][0] == 'LoadImageFromFile'


@pytest.mark.parametrize('shape', [(5, 5, 2), (5, 5, 5), (5,), (0, 4, 3), (2, 5, 5, 3)])
def test_unusable_array_names_its_shape(shape):
    with pytest.raises(ValueError, match=r'img has shape \(.*\); expected \(H, W\), '
                       r'\(H, W, 1\), \(H, W, 3\) or \(H, W, 4\)'):
        as_bgr_image(np.zeros(shape, np.uint8))


def test_missing_image_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'image not found: {tmp_path}/none.png'):
        as_bgr_image(tmp_path / 'none.png')
