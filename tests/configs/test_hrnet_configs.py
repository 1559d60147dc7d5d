"""HRNet + FCN configs: they build through mmseg's registry with the parameter counts of mmseg's
own fcn_hr* models."""
import os

import mmseg
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_hrplus.models.backbones.hrnet import HRNet
from mmseg_hrplus.models.utils.memory_format import is_channels_last

MMSEG_CONFIGS = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs')


def _build(path: str, ours: bool):
    cfg = Config.fromfile(path)
    if ours:
        cfg.model.backbone.init_cfg = None  # nothing is downloaded or read in tests
    else:
        cfg.model.pretrained = None
    init_default_scope('mmseg')
    return cfg, MODELS.build(cfg.model)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_headline_w48_config_matches_mmseg_fcn_hr48(repo_root):
    cfg, model = _build(str(repo_root / 'configs' / 'hrnet_w48_cityscapes.py'), ours=True)
    assert isinstance(model.backbone, HRNet) and model.backbone.arch == 'w48'
    assert 'auxiliary_head' not in cfg.model
    _, ref = _build(os.path.join(MMSEG_CONFIGS, 'hrnet',
                                 'fcn_hr48_4xb2-80k_cityscapes-512x1024.py'), ours=False)
    n = _params(model)
    print(f'hrnet_w48_cityscapes: {n} parameters; mmseg fcn_hr48: {_params(ref)}')
    assert n == _params(ref)
    assert round(n / 1e6, 4) == 65.8587
    # The recipe of mmseg's fcn_hr48 80k.
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9,
                                               weight_decay=0.0005)
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.train_cfg.max_iters == 80000
    assert cfg.train_dataloader.batch_size == 2 and cfg.crop_size == (512, 1024)
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.decode_head.input_transform == 'resize_concat'


@pytest.mark.parametrize('name, mmseg_name', [
    ('hrnet_w18_small_cityscapes.py', 'fcn_hr18s_4xb2-80k_cityscapes-512x1024.py'),
    ('hrnet_w18_cityscapes.py', 'fcn_hr18_4xb2-80k_cityscapes-512x1024.py'),
    ('hrnet_w32_cityscapes.py', None),
    ('hrnet_w48_paper_cityscapes.py', None),
])
def test_variant_configs_build(repo_root, name, mmseg_name):
    cfg, model = _build(str(repo_root / 'configs' / 'hrnet' / name), ours=True)
    specs = model.backbone.out_specs
    assert list(cfg.model.decode_head.in_channels) == [s.channels for s in specs]
    assert cfg.model.decode_head.channels == sum(s.channels for s in specs)
    if mmseg_name is not None:
        _, ref = _build(os.path.join(MMSEG_CONFIGS, 'hrnet', mmseg_name), ours=False)
        assert _params(model) == _params(ref)
    if 'paper' in name:
        assert model.backbone.fuse_order == 'upsample_first'
        assert model.backbone.new_branch == 'from_all'


def test_fast_w48_config_is_fcn_hr48_with_less_arithmetic(repo_root):
    """Same keys and shapes as mmseg's fcn_hr48 (its checkpoints load strictly); the wide 3x3
    convs are Winograd and the head is the per-stream form."""
    from mmseg_hrplus.models.decode_heads import ResizeSumFCNHead
    from mmseg_hrplus.models.layers import WinogradConv2d

    cfg, model = _build(str(repo_root / 'configs' / 'hrnet' / 'hrnet_w48_fast_cityscapes.py'),
                        ours=True)
    _, ref = _build(os.path.join(MMSEG_CONFIGS, 'hrnet',
                                 'fcn_hr48_4xb2-80k_cityscapes-512x1024.py'), ours=False)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert isinstance(model.decode_head, ResizeSumFCNHead)
    winograd = [m for m in model.backbone.modules()
                if isinstance(m, WinogradConv2d) and m.uses_winograd]
    # Streams 2-4 (96/192/384 channels) of stages 2-4: 4 blocks x 2 convs per branch per
    # module; stage2 has 1 module (1 wide branch), stage3 4 (2), stage4 3 (3).
    assert len(winograd) == 8 * (1 * 1 + 4 * 2 + 3 * 3)
    assert cfg.train_cfg.max_iters == 80000 and cfg.model.backbone.arch == 'w48'
    # the backbone computes in NHWC, the head in NCHW (README, speed section)
    assert model.backbone.channels_last
    assert all(is_channels_last(p) for p in model.backbone.parameters()
               if p.dim() == 4 and p.shape[2:] != (1, 1))
    assert all(p.is_contiguous() for p in model.decode_head.parameters())
