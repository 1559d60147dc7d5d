"""The HRNet configs initialise from ImageNet by the same open-mmlab:// names as mmseg's (and,
for widths mmseg has no segmentation config of, mmdet's) HRNet configs: each name resolves, in
mmengine's name -> URL table, to the URL of the reference config's name. Nothing is downloaded."""
import os
from functools import lru_cache
from pathlib import Path

import mmdet
import mmseg
import pytest
from mmengine.config import Config
from mmengine.runner.checkpoint import get_external_models

REPO_ROOT = Path(__file__).resolve().parents[2]
MMSEG = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs')
MMDET = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs')
PREFIX = 'open-mmlab://'

#: Our HRNet arch -> a reference config (mmseg's fcn_hr*, else mmdet's Faster R-CNN) of it.
REFERENCES = {
    'w48': f'{MMSEG}/hrnet/fcn_hr48_4xb2-80k_cityscapes-512x1024.py',
    'w18': f'{MMSEG}/hrnet/fcn_hr18_4xb2-80k_cityscapes-512x1024.py',
    'w18_small': f'{MMSEG}/hrnet/fcn_hr18s_4xb2-80k_cityscapes-512x1024.py',
    'w32': f'{MMDET}/hrnet/faster-rcnn_hrnetv2p-w32-1x_coco.py',
    'w40': f'{MMDET}/hrnet/faster-rcnn_hrnetv2p-w40-1x_coco.py',
}


def imagenet_initialised_configs():
    """(config, arch, name) of every config whose HRNet backbone loads an open-mmlab:// file
    (each config is read once, here)."""
    found = []
    for path in sorted((REPO_ROOT / 'configs').rglob('*.py')):
        if '_base_' in path.parts:
            continue
        backbone = Config.fromfile(str(path)).model.backbone
        init = backbone.get('init_cfg') or {}
        if backbone.type.endswith('HRNet') and str(init.get('checkpoint', '')).startswith(PREFIX):
            found.append((str(path.relative_to(REPO_ROOT / 'configs')), backbone.get('arch'),
                          init['checkpoint'][len(PREFIX):]))
    return found


CONFIGS = imagenet_initialised_configs()


def test_the_hrnet_configs_are_covered():
    names = {name for name, _, _ in CONFIGS}
    for name in ('hrnet_w48_cityscapes.py', 'hrnet/hrnet_w18_cityscapes.py',
                 'hrnet/hrnet_w18_small_cityscapes.py', 'hrnet/hrnet_w32_cityscapes.py'):
        assert name in names


def init_name(cfg: Config) -> str:
    """The checkpoint name a config initialises its backbone from (mmseg puts it in
    model.pretrained, mmdet and we in backbone.init_cfg)."""
    name = cfg.model.get('pretrained') or cfg.model.backbone.init_cfg.checkpoint
    assert name.startswith(PREFIX), name
    return name[len(PREFIX):]


@lru_cache()
def reference_name(arch: str) -> str:
    return init_name(Config.fromfile(REFERENCES[arch]))


@pytest.mark.parametrize('ours, arch, mine', CONFIGS, ids=[name for name, _, _ in CONFIGS])
def test_init_name_resolves_to_the_reference_url(ours, arch, mine):
    table = get_external_models()
    assert arch in REFERENCES, f'{ours}: no reference config for arch={arch!r}'
    theirs = reference_name(arch)
    assert mine in table, f'{ours}: {PREFIX}{mine} is not in mmengine\'s table'
    print(f'{ours}: {PREFIX}{mine} -> {table[mine]}')
    assert mine == theirs and table[mine] == table[theirs]


def test_official_weights_configs_need_no_imagenet_file():
    for path in sorted((REPO_ROOT / 'configs' / 'hrnet').glob('*_official-weights.py')):
        cfg = Config.fromfile(str(path))
        assert cfg.model.backbone.init_cfg is None, path.name
        assert cfg.load_from.endswith(path.stem + '.pth'), path.name
