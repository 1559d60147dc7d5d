"""Heads and necks that do not fit the backbone's declared outputs fail when the model is built
(issue 7: "a head whose in_channels do not match the backbone's declared outputs (error at
build, naming both)"; "BGA in_index out of range"), through the tools' ``build_runner``."""
import re
from importlib import import_module

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmseg_hrplus.engine.runner import build_runner, load_config
from mmseg_hrplus.models.utils import check_model_contract

W18_OUTPUTS = '[0: 18ch @1/4, 1: 36ch @1/8, 2: 72ch @1/16, 3: 144ch @1/32]'


pytestmark = pytest.mark.usefixtures('one_thread')


def _runner(repo_root, tmp_path, config: str, **options):
    cfg = load_config(str(repo_root / 'configs' / config),
                      {'model.backbone.init_cfg': None, **options}, work_dir=str(tmp_path))
    return build_runner(cfg)


def test_fcn_head_with_w48_channels_on_w18_fails_at_build(repo_root, tmp_path):
    with pytest.raises(ValueError) as info:
        _runner(repo_root, tmp_path, 'hrnet/hrnet_w18_cityscapes.py',
                **{'model.decode_head.in_channels': [48, 96, 192, 384]})
    assert str(info.value) == (
        "model.decode_head: FCNHead: in_channels sum to 720 (input_transform='resize_concat', "
        'in_index=[0, 1, 2, 3]) but the backbone outputs it reads have channels '
        f'[18, 36, 72, 144] (sum 270); backbone outputs: {W18_OUTPUTS}')


def test_single_input_fcn_head_names_its_channels_and_the_outputs(repo_root):
    cfg = _config(repo_root, 'hrnet/hrnet_w18_cityscapes.py')
    cfg.model.decode_head.update(in_channels=48, in_index=0, input_transform=None)
    with pytest.raises(ValueError) as info:
        check_model_contract(_meta_model(cfg))
    assert str(info.value) == (
        'model.decode_head: FCNHead: in_channels=[48] (in_index=[0]) does not match the '
        f'backbone outputs, which have channels [18]; backbone outputs: {W18_OUTPUTS}')


def test_matching_config_builds_and_is_checked(repo_root, tmp_path):
    runner = _runner(repo_root, tmp_path, 'hrnet/hrnet_w18_cityscapes.py')
    model = runner.model
    assert model.decode_head.in_channels == sum(s.channels for s in model.backbone.out_specs)
    check_model_contract(model)   # what build_runner ran: no error


# The BGA mix through the Runner at narrow settings: w18_small has W18's outputs, fewer blocks.
BGA_SMALL = {'model.backbone.arch': 'w18_small', 'model.decode_head.channels': 32}


def test_bga_in_index_out_of_range_fails_at_build(repo_root, tmp_path):
    with pytest.raises(ValueError) as info:
        _runner(repo_root, tmp_path, 'mix/hrnet_w18_bga_cityscapes-512x1024.py',
                **BGA_SMALL, **{'model.decode_head.in_index': (0, 4)})
    assert str(info.value) == (
        'model.decode_head: BGAHead: in_index 4 is out of range for a backbone with 4 outputs '
        f'{W18_OUTPUTS}')


@pytest.mark.parametrize('where, change, message', [
    ('decode_head', dict(in_index=(0, 2), in_channels=(18, 72)),
     'model.decode_head: BGAHead: stride_ratio=8 but the maps at in_index=[0, 2] have strides '
     '4 and 16 (ratio 4)'),
    ('decode_head', dict(in_channels=(18, 128)),
     'model.decode_head: BGAHead: in_channels=[18, 128] (in_index=[0, 3]) does not match the '
     f'backbone outputs, which have channels [18, 144]; backbone outputs: {W18_OUTPUTS}'),
    (1, dict(in_channels=36),      # stream 2 has 72
     'model.auxiliary_head[1]: BoosterHead: in_channels=[36] (in_index=[2]) does not match '
     f'the backbone outputs, which have channels [72]; backbone outputs: {W18_OUTPUTS}'),
], ids=['bga_stride_ratio', 'bga_in_channels', 'booster_in_channels'])
def test_bga_mix_mismatches_name_the_head(repo_root, where, change, message):
    cfg = _config(repo_root, 'mix/hrnet_w18_bga_cityscapes-512x1024.py')
    head = cfg.model.decode_head if where == 'decode_head' else cfg.model.auxiliary_head[where]
    head.update(change)
    with pytest.raises(ValueError) as info:
        check_model_contract(_meta_model(cfg))
    assert str(info.value) == message


def _config(repo_root, name: str) -> Config:
    return Config.fromfile(str(repo_root / 'configs' / name))


def _meta_model(cfg: Config):
    """Full-width model without memory: only the module structure is needed here."""
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope), torch.device('meta'):
        return import_module(f'{cfg.default_scope}.registry').MODELS.build(cfg.model)


def test_detector_neck_mismatch_names_the_neck(repo_root):
    cfg = _config(repo_root, 'mmdet/faster-rcnn_hrnetv2p-w32_1x_coco.py')
    cfg.model.neck.in_channels = [18, 36, 72, 144]      # W18's, on the W32 backbone
    with pytest.raises(ValueError, match=re.escape(
            'model.neck: HRNetV2pNeck: in_channels=[18, 36, 72, 144] (in_index=[0, 1, 2, 3]) '
            'does not match the backbone outputs, which have channels [32, 64, 128, 256]; '
            'backbone outputs: [0: 32ch @1/4, 1: 64ch @1/8, 2: 128ch @1/16, 3: 256ch @1/32]')):
        check_model_contract(_meta_model(cfg))


def test_resize_concat_index_out_of_range_is_reported_before_the_sum(repo_root):
    cfg = _config(repo_root, 'hrnet/hrnet_w18_cityscapes.py')
    cfg.model.decode_head.in_index = (0, 1, 2, 4)
    with pytest.raises(ValueError, match=re.escape(
            'model.decode_head: FCNHead: in_index 4 is out of range for a backbone with 4 '
            f'outputs {W18_OUTPUTS}')):
        check_model_contract(_meta_model(cfg))


def test_backbones_without_declared_outputs_are_not_checked():
    """mmseg's own ResNet declares nothing: a wrong head is left to fail in forward, as before."""
    cfg = Config(dict(default_scope='mmseg', model=dict(
        type='EncoderDecoder',
        backbone=dict(type='ResNetV1c', depth=18, init_cfg=None),
        decode_head=dict(type='FCNHead', in_channels=7, in_index=3, channels=8,
                         num_classes=2))))
    model = _meta_model(cfg)
    assert not hasattr(model.backbone, 'out_specs')
    check_model_contract(model)


def test_contract_hook_checks_under_plain_mmengine_runner(repo_root, tmp_path):
    """mmseg's own tools build a plain Runner: the hook gives them the check at before_run."""
    from mmengine.runner import Runner
    cfg = _config(repo_root, 'hrnet/hrnet_w18_cityscapes.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.in_channels = [48, 96, 192, 384]
    cfg.work_dir = str(tmp_path)
    cfg.custom_hooks = [dict(type='ModelContractHook')]
    runner = Runner.from_cfg(cfg)   # no check here: what mmseg's tools/train.py does
    with pytest.raises(ValueError, match=r'^model\.decode_head: FCNHead: in_channels sum to 720'):
        runner.call_hook('before_run')


# OCRNet (CascadeEncoderDecoder): decode_head is a ModuleList [FCNHead, OCRHead]. Both read the
# backbone streams through in_index/in_channels; the OCRHead also takes the FCNHead's logits,
# which are not a backbone output and are not part of its in_channels.
OCRNET_W18 = 'hrnet/ocrnet_hr18_cityscapes.py'


@pytest.mark.parametrize('stage, head', [(0, 'FCNHead'), (1, 'OCRHead')])
def test_ocrnet_cascade_head_with_w48_channels_names_the_head(repo_root, stage, head):
    cfg = _config(repo_root, OCRNET_W18)
    cfg.model.decode_head[stage].in_channels = [48, 96, 192, 384]
    with pytest.raises(ValueError) as info:
        check_model_contract(_meta_model(cfg))
    assert str(info.value) == (
        f"model.decode_head[{stage}]: {head}: in_channels sum to 720 (input_transform="
        "'resize_concat', in_index=[0, 1, 2, 3]) but the backbone outputs it reads have "
        f'channels [18, 36, 72, 144] (sum 270); backbone outputs: {W18_OUTPUTS}')


def test_ocrnet_single_stream_ocr_head_is_checked_per_channel(repo_root):
    """An OCRHead on one stream (no resize_concat) is checked entry by entry."""
    cfg = _config(repo_root, OCRNET_W18)
    cfg.model.decode_head[1].update(in_channels=48, in_index=0, input_transform=None)
    with pytest.raises(ValueError) as info:
        check_model_contract(_meta_model(cfg))
    assert str(info.value) == (
        'model.decode_head[1]: OCRHead: in_channels=[48] (in_index=[0]) does not match the '
        f'backbone outputs, which have channels [18]; backbone outputs: {W18_OUTPUTS}')
    cfg.model.decode_head[1].in_channels = 18     # stream 0 of W18: fits
    check_model_contract(_meta_model(cfg))


def test_ocrnet_wrong_ocr_head_fails_in_build_runner(repo_root, tmp_path):
    with pytest.raises(ValueError, match=re.escape(
            'model.decode_head[1]: OCRHead: in_index 4 is out of range for a backbone with 4 '
            f'outputs {W18_OUTPUTS}')):
        _runner(repo_root, tmp_path, OCRNET_W18,
                **{'model.decode_head.1.in_index': (0, 1, 2, 4)})


@pytest.mark.parametrize('config', [OCRNET_W18, 'hrnet/ocrnet_hr48_paper_cityscapes.py'])
def test_matching_ocrnet_passes(repo_root, config):
    model = _meta_model(_config(repo_root, config))
    assert [type(h).__name__ for h in model.decode_head] == ['FCNHead', 'OCRHead']
    total = sum(s.channels for s in model.backbone.out_specs)
    assert [h.in_channels for h in model.decode_head] == [total, total]
    check_model_contract(model)
