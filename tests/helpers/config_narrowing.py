"""Configs of configs/ made tiny: found, built in their own scope, narrowed, fed random batches.

Narrowing keeps a config's structure (backbone type and its mode arguments, head types,
``in_index``, ``input_transform``, auxiliary heads, cascade decode heads such as OCRNet's
FCNHead + OCRHead, losses) and only shrinks widths and depths; detectors (the neck and every
RPN/RoI/mask/semantic/single-stage head, cascade stages included) as in
tests/helpers/detector_narrowing.py. Used by tests/configs/test_every_config.py and
tests/configs/test_init_weights_by_name.py.
"""
import contextlib
import copy
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.config import utils as mmengine_config_utils
from mmengine.registry import DefaultScope

from tests.helpers.detector_narrowing import narrow_detector
from tests.helpers.tiny_models import tiny_hrnet_extra

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_ROOT = REPO_ROOT / 'configs'

#: Train and predict size: sides divisible by 32 (mmdet's nearest-upsampling HRNet needs it).
INPUT_HW = (64, 128)
NUM_DET_OBJECTS = 3

# Four streams like W18 (stride 4..32), one block per branch, widths 4..32.
TINY_HRNET = tiny_hrnet_extra()
# Per backbone type: arguments replacing the width/depth ones (mode arguments are kept).
BACKBONE_NARROWING = {
    'HRNet': dict(arch=None, extra=TINY_HRNET),
    'DilatedResNet': dict(depth=50, stem_channels=8, base_channels=4),
    'BiSeNetV2': dict(detail_channels=(8, 8, 16), detail_depths=(1, 1, 1),
                      semantic_channels=(8, 8, 16, 16), semantic_depths=(1, 1, 1),
                      expand_ratio=2),
}
HEAD_WIDTH = 16       # channels / bga_channels / ocr_channels / branch_channels of seg heads
DET_WIDTH = 32        # neck and RPN/RoI widths of detectors


def all_configs() -> List[Path]:
    """Every runnable config: ``configs/**/*.py`` except the ``_base_`` fragments."""
    return sorted(p for p in CONFIG_ROOT.rglob('*.py')
                  if '_base_' not in p.relative_to(CONFIG_ROOT).parts)


@contextlib.contextmanager
def package_metainfo_read_once():
    """Within: mmengine parses each OpenMMLab package's model index once, not per base.

    ``Config.fromfile`` first looks every ``mmseg::``/``mmdet::`` base up as a model-zoo config,
    parsing all ~160 metafile YAMLs of the package each time before falling back to the base
    folder (about 1 s of a config's 1.2 s, measured). The files belong to the installed package
    and mmengine only reads what it parses, so the parsed files are kept for the duration.
    """
    original = mmengine_config_utils.load
    mmengine_config_utils.load = lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        mmengine_config_utils.load = original


def load_configs(paths: Sequence[Path]) -> Dict[Path, Config]:
    """``Config.fromfile`` of every path, reading the packages' model indexes once."""
    with package_metainfo_read_once():
        return {path: Config.fromfile(str(path)) for path in paths}


def config_id(path: Path) -> str:
    return str(path.relative_to(CONFIG_ROOT))


def registry(scope: str):
    """The MODELS registry of a config's ``default_scope`` ('mmseg' or 'mmdet')."""
    return import_module(f'{scope}.registry').MODELS


def build_model(cfg: Config) -> torch.nn.Module:
    """Build ``cfg.model`` in the config's own scope (restoring the previous default scope)."""
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return registry(cfg.default_scope).build(cfg.model)


def _short_type(type_name: str) -> str:
    return type_name.split('.')[-1]


def _replace_syncbn(node: Any) -> Any:
    """SyncBN needs a process group; BN is the same layer on one process."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _replace_syncbn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_syncbn(value)
    return node


def _head_cfgs(model_cfg: ConfigDict) -> List[ConfigDict]:
    heads = []
    for key in ('decode_head', 'auxiliary_head'):
        head = model_cfg.get(key)
        if head is None:
            continue
        heads += list(head) if isinstance(head, (list, tuple)) else [head]
    return heads


def _channels_at(specs: Sequence, in_index) -> Any:
    if isinstance(in_index, int):
        return specs[in_index].channels
    return [specs[i].channels for i in in_index]


def narrow(cfg: Config, keep_init: bool = False,
           backbone_narrowing: Optional[Dict[str, dict]] = None) -> Config:
    """A copy of ``cfg`` whose model trains and predicts at :data:`INPUT_HW` in a second.

    Args:
        keep_init: keep the backbone's ``init_cfg``; by default it is dropped, so that no file
            is read or downloaded.
        backbone_narrowing: per backbone type, the arguments to replace
            (:data:`BACKBONE_NARROWING` by default).

    SyncBN becomes BN.
    """
    cfg = copy.deepcopy(cfg)
    model = _replace_syncbn(cfg.model)
    backbone = model.backbone
    init_cfg = backbone.get('init_cfg')
    backbone.init_cfg = None
    model.pop('pretrained', None)
    narrowing = BACKBONE_NARROWING if backbone_narrowing is None else backbone_narrowing
    for key, value in narrowing.get(_short_type(backbone.type), {}).items():
        if value is None:
            backbone.pop(key, None)
        else:
            backbone[key] = value
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        specs = registry(cfg.default_scope).build(backbone).out_specs
    if keep_init:
        backbone.init_cfg = init_cfg

    if cfg.default_scope == 'mmdet':
        narrow_detector(model, specs, DET_WIDTH)
        return cfg

    model.data_preprocessor.size = INPUT_HW
    model.test_cfg = dict(mode='whole')
    for head in _head_cfgs(model):
        head.in_channels = _channels_at(specs, head.in_index)
        for key in ('channels', 'bga_channels', 'ocr_channels'):
            if key in head:
                head[key] = HEAD_WIDTH
        if head.get('branch_channels') is not None:
            head.branch_channels = HEAD_WIDTH
    return cfg


def seg_batch(num_classes: int, batch: int = 2) -> dict:
    """Random uint8 images and labels (with some ignore pixels) as a dataloader yields them."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = INPUT_HW
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        label = torch.randint(0, num_classes, (1, h, w))
        label[:, :4] = 255
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def det_batch(num_classes: int, batch: int = 2, masks: bool = False,
              semantic_classes: Optional[int] = None) -> dict:
    """Random images with a few random boxes each; with ``masks``, each box's instance mask is
    the filled box; with ``semantic_classes``, a random ``gt_sem_seg`` (HTC's semantic branch)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    h, w = INPUT_HW
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        xy = torch.rand(NUM_DET_OBJECTS, 2) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(NUM_DET_OBJECTS, 2) * torch.tensor([w * 0.3, h * 0.3]) + 8
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        boxes = torch.cat([xy, xy + wh], dim=1)
        sample.gt_instances = InstanceData(
            bboxes=boxes, labels=torch.randint(0, num_classes, (NUM_DET_OBJECTS, )))
        if masks:
            bitmaps = np.zeros((NUM_DET_OBJECTS, h, w), dtype=np.uint8)
            for bitmap, (x1, y1, x2, y2) in zip(bitmaps, boxes.long().tolist()):
                bitmap[y1:y2, x1:x2] = 1
            sample.gt_instances.masks = BitmapMasks(bitmaps, h, w)
        if semantic_classes is not None:
            sample.gt_sem_seg = PixelData(
                sem_seg=torch.randint(0, semantic_classes, (1, h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)

