"""Fixtures shared by the tools/infer.py tests (images in test_infer.py, videos in
test_infer_video.py): a tiny randomly initialised HRNet segmentor saved as config + checkpoint."""
import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.helpers.tiny_models import tiny_hrnet_extra

NORM = dict(type='BN', requires_grad=True)
TINY_RUN_PALETTE = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]]
CONFIG = dict(
    default_scope='mmseg',
    custom_imports=dict(imports=['mmseg_hrplus']),
    model=dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=255),
        backbone=dict(type='mmseg_hrplus.HRNet', norm_cfg=NORM, extra=tiny_hrnet_extra()),
        decode_head=dict(type='FCNHead', in_channels=[4, 8, 16, 32], in_index=(0, 1, 2, 3),
                         input_transform='resize_concat', channels=8, kernel_size=1,
                         num_convs=1, concat_input=False, dropout_ratio=-1, num_classes=5,
                         norm_cfg=NORM, align_corners=False),
        test_cfg=dict(mode='whole')),
    test_pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')])


@pytest.fixture
def tiny_run(tmp_path):
    """Config + checkpoint of a randomly initialised tiny HRNet (classifier weights scaled up
    so several classes win somewhere), and a folder with a colour and a grayscale image."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    config = tmp_path / 'tiny.py'
    Config(CONFIG).dump(str(config))
    model = MODELS.build(CONFIG['model'])
    model.init_weights()
    torch.nn.init.normal_(model.decode_head.conv_seg.weight, std=10.0)
    checkpoint = tmp_path / 'tiny.pth'
    meta = dict(dataset_meta=dict(classes=[f'c{i}' for i in range(5)], palette=TINY_RUN_PALETTE))
    torch.save(dict(meta=meta, state_dict=model.state_dict()), checkpoint)
    images = tmp_path / 'images'
    rng = np.random.RandomState(0)
    mmcv.imwrite(rng.randint(0, 256, (40, 56, 3), dtype=np.uint8), str(images / 'colour.png'))
    mmcv.imwrite(rng.randint(0, 256, (33, 47), dtype=np.uint8), str(images / 'sub' / 'gray.png'))
    return config, checkpoint, images


@pytest.fixture
def tiny_run_palette():
    """The RGB palette saved in ``tiny_run``'s checkpoint, one colour per class."""
    return TINY_RUN_PALETTE
