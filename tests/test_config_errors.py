"""Bad architecture arguments given the way users give them (a config plus ``--cfg-options``)
reach them as the component's own message: the argument, the value and the allowed values,
unchanged by the registry (issue 7: unknown ``arch``, ``fusion_mode``, ``upsample_mode``,
``output_stride``). The constructors' own checks are tested next to each backbone."""
from importlib import import_module

import pytest
from mmengine.registry import DefaultScope

from mmseg_hrplus.engine.runner import build_runner, load_config

HRNET = 'hrnet/hrnet_w18_cityscapes.py'
HRNET_ARCHS = "'w18_small', 'w18', 'w32', 'w40', 'w48', 'w18_small_v1'"

CASES = [
    (HRNET, {'model.backbone.arch': 'w64'},
     f"arch='w64' is not supported; allowed values: {HRNET_ARCHS}"),
    (HRNET, {'model.backbone.fusion_mode': 'mixed'},
     "fusion_mode='mixed' is not supported; allowed values: 'official', 'paper'"),
    (HRNET, {'model.backbone.upsample_mode': 'bicubic'},
     "upsample_mode='bicubic' is not supported; allowed values: 'bilinear', 'nearest'"),
    ('mmdet/faster-rcnn_hrnetv2p-w18_1x_coco.py', {'model.backbone.arch': 'w18s'},
     f"arch='w18s' is not supported; allowed values: {HRNET_ARCHS}"),
    ('deeplabv2/deeplabv2_r101-d8_cityscapes-512x1024.py', {'model.backbone.output_stride': 4},
     'DilatedResNet: output_stride=4 is not supported; allowed values: 8, 16, 32'),
    ('mix/dilated-r101_bga_cityscapes-512x1024.py', {'model.backbone.output_stride': 12},
     'DilatedResNet: output_stride=12 is not supported; allowed values: 8, 16, 32'),
    ('bisenetv2/bisenetv2_cityscapes-1024x1024.py', {'model.backbone.arch': 'huge'},
     "arch='huge' is not supported; allowed values: 'base', 'large'"),
]


@pytest.mark.parametrize('config, options, message', CASES,
                         ids=[f'{c}:{next(iter(o))}' for c, o, _ in CASES])
def test_bad_argument_in_a_config_names_argument_and_allowed_values(repo_root, tmp_path,
                                                                     config, options, message):
    cfg = load_config(str(repo_root / 'configs' / config), options, work_dir=str(tmp_path))
    models = import_module(f'{cfg.default_scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope), \
            pytest.raises(ValueError) as info:
        models.build(cfg.model)
    assert str(info.value) == message


def test_bad_arch_through_the_tools_runner(repo_root, tmp_path):
    """What ``tools/train.py CONFIG --cfg-options model.backbone.arch=w64`` prints."""
    cfg = load_config(str(repo_root / 'configs' / HRNET), {'model.backbone.arch': 'w64'},
                      work_dir=str(tmp_path))
    with pytest.raises(ValueError) as info:
        build_runner(cfg)
    assert str(info.value) == f"arch='w64' is not supported; allowed values: {HRNET_ARCHS}"
