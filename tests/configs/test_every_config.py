"""Every config in configs/ (except _base_) builds in its own scope, trains one step and predicts.

Configs are found at collection time, so a new config is covered without touching this file.
Each one is checked twice:

* at full width, built on the ``meta`` device (no memory, no time): the neck and heads fit the
  backbone's declared outputs (``check_model_contract``), so a config whose ``in_channels`` are
  wrong fails here even though narrowing would have recomputed them;
* narrowed (a tiny backbone of the same type and modes, heads recomputed from its
  ``out_specs``, SyncBN -> BN, 64x128 inputs): one training step through the data
  preprocessor (finite losses, a gradient on every trainable parameter) and one predict
  (segmentation at the input size; boxes inside the image).

How configs are found and narrowed: tests/helpers/config_narrowing.py.
"""
import copy
import math

import pytest
import torch

from mmseg_hrplus.models.utils import check_model_contract
from tests.helpers.config_narrowing import (INPUT_HW, all_configs, build_model, config_id,
                                            det_batch, load_configs, narrow,
                                            seg_batch)
from tests.helpers.detector_narrowing import detector_needs, detector_num_classes

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]


CONFIGS = all_configs()
LOADED = load_configs(CONFIGS)  # each read once, at collection


def test_configs_are_found():
    names = {config_id(p) for p in CONFIGS}
    # The tree's families; any new config is picked up by the parametrisation below.
    for family in ('hrnet/', 'deeplabv2/', 'bisenetv2/', 'mmdet/', 'mix/', 'quickstart/'):
        assert any(n.startswith(family) for n in names), family
    assert not any('_base_' in n for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds_trains_and_predicts(path):
    cfg = LOADED[path]
    scope = cfg.get('default_scope')
    assert scope in ('mmseg', 'mmdet'), f'{config_id(path)}: default_scope={scope!r}'

    full = copy.deepcopy(cfg)
    full.model.backbone.init_cfg = None
    with torch.device('meta'):
        check_model_contract(build_model(full))

    cfg = narrow(cfg)
    model = build_model(cfg)
    model.init_weights()
    is_det = scope == 'mmdet'
    if is_det:
        num_classes = detector_num_classes(cfg.model)
        batch = det_batch(num_classes, **detector_needs(cfg.model))
    else:
        # the segmentor's own copy: decode_head is a ModuleList in cascade models (OCRNet)
        num_classes = model.num_classes
        batch = seg_batch(num_classes)
    check_model_contract(model)

    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    bad = {k: v for k, v in log_vars.items()
           if 'loss' in k and not math.isfinite(float(torch.as_tensor(v).detach()))}
    assert not bad, f'non-finite losses {bad}'
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [n for n, p in trainable if p.grad is None]
    assert not no_grad, f'{len(no_grad)} trainable parameters got no gradient: {no_grad[:5]}'
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert sum(p.grad.abs().sum().item() for _, p in trainable) > 0

    model.eval()
    h, w = INPUT_HW
    batch = det_batch(num_classes, batch=1) if is_det else seg_batch(num_classes, batch=1)
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        (result, ) = model(**data, mode='predict')
    if is_det:
        boxes = result.pred_instances.bboxes
        assert boxes.ndim == 2 and boxes.shape[1] == 4
        assert bool((boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all())
        assert bool((boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= h).all())
        assert bool((result.pred_instances.labels < num_classes).all())
    else:
        assert tuple(result.pred_sem_seg.data.shape) == (1, h, w)
        assert tuple(result.seg_logits.data.shape) == (model.out_channels, h, w)
