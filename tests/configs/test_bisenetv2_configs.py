"""BiSeNetV2 configs: the paper's recipe (weight decay on conv weights only), heads wired to the
backbone's outputs, and mmengine's FLOP count at 512x1024 against mmseg's model."""
from pathlib import Path

import mmseg
import pytest
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS as MMSEG_MODELS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'bisenetv2'
STANDARD = CONFIGS / 'bisenetv2_cityscapes-1024x1024.py'
LARGE = CONFIGS / 'bisenetv2-large_cityscapes-1024x1024.py'
MMSEG_CONFIG = (Path(mmseg.__file__).parent / '.mim' / 'configs' / 'bisenetv2'
                / 'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py')
MMSEG_FLOPS_512x1024 = 24.7e9  # mmseg bisenetv2_fcn, mmengine count (docs/STACK.md)


def build(path, with_aux=True):
    cfg = Config.fromfile(str(path))
    if not with_aux:
        cfg.model.pop('auxiliary_head')
    with DefaultScope.overwrite_default_scope('mmseg'):  # mmseg's data preprocessor
        return revert_sync_batchnorm(MMSEG_MODELS.build(cfg.model))


@pytest.mark.parametrize('path', [STANDARD, LARGE])
def test_recipe(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
    model = cfg.model
    assert model.backbone.type == 'mmseg_hrplus.BiSeNetV2'
    assert model.backbone.get('init_cfg') is None  # from scratch: Kaiming init, no download
    assert model.decode_head.type == 'mmseg_hrplus.BGAHead'
    assert tuple(model.decode_head.in_index) == (0, 1)
    boosters = model.auxiliary_head
    assert [h.type for h in boosters] == ['mmseg_hrplus.BoosterHead'] * 4
    assert [h.in_index for h in boosters] == [2, 3, 4, 5]  # stem, stages 3, 4, 5 (before CE)
    assert [h.loss_decode.loss_weight for h in boosters] == [1.0] * 4
    opt = cfg.optim_wrapper
    assert opt.optimizer == dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
    assert opt.paramwise_cfg == dict(norm_decay_mult=0.0, bias_decay_mult=0.0)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 1000)
    assert (poly.type, poly.power, poly.begin, poly.end) == ('PolyLR', 0.9, 1000, 150000)
    assert cfg.train_cfg.max_iters == 150000
    assert cfg.train_dataloader.batch_size * 4 == cfg.auto_scale_lr.base_batch_size == 16


@pytest.mark.parametrize('path, arch', [(STANDARD, 'base'), (LARGE, 'large')])
def test_heads_match_backbone_outputs(path, arch):
    model = build(path)
    assert model.backbone.arch == arch
    specs = model.backbone.out_specs
    detail, semantic = model.decode_head.check_inputs(specs)
    assert (detail.stride, semantic.stride) == (8, 32)
    for head in model.auxiliary_head:
        head.check_inputs(specs)


def test_weight_decay_only_on_conv_weights():
    model = build(STANDARD)
    cfg = Config.fromfile(str(STANDARD))
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = {id(p): g['weight_decay'] for g in optimizer.param_groups for p in g['params']}
    conv_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert len(decay) == len(list(model.parameters()))
    wrong = [name for name, p in model.named_parameters()
             if decay[id(p)] != (5e-4 if id(p) in conv_weights else 0.0)]
    assert wrong == []
    assert sum(d > 0 for d in decay.values()) == len(conv_weights)


def test_flops_at_512x1024_match_mmseg():
    inputs = torch.rand(1, 3, 512, 1024)
    ours = get_model_complexity_info(build(STANDARD).eval(), inputs=inputs, show_table=False,
                                     show_arch=False)['flops']
    ref = get_model_complexity_info(build(MMSEG_CONFIG, with_aux=False).eval(), inputs=inputs,
                                    show_table=False, show_arch=False)['flops']
    assert abs(ours - ref) / ref <= 0.05
    assert abs(ours - MMSEG_FLOPS_512x1024) / MMSEG_FLOPS_512x1024 <= 0.05
