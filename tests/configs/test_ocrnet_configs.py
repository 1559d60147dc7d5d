"""OCRNet on our HRNet (configs/hrnet/ocrnet_*): mmseg's ocrnet_hr* models with the backbone
replaced by ``mmseg_hrplus.HRNet``.

* The official-fusion configs differ from mmseg's only in the backbone entry, have mmseg's
  parameter count and state-dict keys, and use mmseg's ImageNet file names.
* The paper-fusion variants differ by exactly the weights the paper fusion adds to the backbone
  (counted on the backbones alone).
* A randomised mmseg ocrnet_hr18 state dict loads strictly into ours and gives identical
  features, soft regions, logits and training losses.
"""
from pathlib import Path
from typing import Dict

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmseg_hrplus.engine.runner import build_config_model
from mmseg_hrplus.models.backbones.hrnet import HRNet
from tests.helpers.tiny_models import randomize_conv_bn_

HRNET_CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'hrnet'
MMSEG_OCRNET = Path(mmseg.__file__).parent / '.mim' / 'configs' / 'ocrnet'

#: our config -> (mmseg's config, our backbone arch)
OFFICIAL = {
    'ocrnet_hr18s_cityscapes.py': ('ocrnet_hr18s_4xb2-80k_cityscapes-512x1024.py', 'w18_small'),
    'ocrnet_hr18_cityscapes.py': ('ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py', 'w18'),
    'ocrnet_hr48_cityscapes.py': ('ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py', 'w48'),
}
#: paper-fusion config -> its official-fusion config
PAPER = {
    'ocrnet_hr18_paper_cityscapes.py': 'ocrnet_hr18_cityscapes.py',
    'ocrnet_hr48_paper_cityscapes.py': 'ocrnet_hr48_cityscapes.py',
}

pytestmark = pytest.mark.usefixtures('one_thread')


def _ours(name: str) -> Config:
    cfg = Config.fromfile(str(HRNET_CONFIGS / name))
    cfg.model.backbone.init_cfg = None   # nothing is downloaded or read in tests
    return cfg


def _mmseg(name: str) -> Config:
    cfg = Config.fromfile(str(MMSEG_OCRNET / name))
    cfg.model.pretrained = None
    return cfg


def _meta(cfg: Config) -> torch.nn.Module:
    """The model's structure only (no memory, no init): enough for counts and keys."""
    with torch.device('meta'):
        return build_config_model(cfg)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shapes(module: torch.nn.Module) -> Dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _plain(node):
    """A config dict without the ``_scope_='mmseg'`` marks mmengine adds to every typed dict
    inherited through ``mmseg::``."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(_plain(v) for v in node)
    return node


@pytest.mark.parametrize('name', list(OFFICIAL))
def test_config_is_mmseg_ocrnet_with_our_backbone(name):
    """Recipe, data, heads and every other entry are mmseg's; the ImageNet file is the one
    mmseg's ``model.pretrained`` names."""
    mmseg_name, arch = OFFICIAL[name]
    ours = _plain(Config.fromfile(str(HRNET_CONFIGS / name)).to_dict())
    ref = Config.fromfile(str(MMSEG_OCRNET / mmseg_name)).to_dict()
    assert ours['custom_imports'] == dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
    assert {k: v for k, v in ours.items() if k != 'custom_imports'}.keys() == ref.keys()
    for key in ref:
        if key != 'model':
            assert ours[key] == ref[key], key
    model, ref_model = ours['model'], ref['model']
    assert model['type'] == 'CascadeEncoderDecoder' and model['num_stages'] == 2
    assert [h['type'] for h in model['decode_head']] == ['FCNHead', 'OCRHead']
    for key in set(ref_model) - {'backbone', 'pretrained'}:
        assert model[key] == ref_model[key], key
    backbone = model['backbone']
    assert model['pretrained'] is None
    assert backbone['type'] == 'mmseg_hrplus.HRNet' and backbone['arch'] == arch
    assert backbone['fusion_mode'] == 'official'
    assert backbone['init_cfg'] == dict(type='Pretrained', checkpoint=ref_model['pretrained'])
    assert backbone['norm_cfg'] == ref_model['backbone']['norm_cfg']
    assert backbone['norm_eval'] == ref_model['backbone']['norm_eval']


@pytest.mark.parametrize('name', list(OFFICIAL))
def test_parameter_count_and_keys_are_mmseg_ocrnet(name):
    mmseg_name, arch = OFFICIAL[name]
    model, ref = _meta(_ours(name)), _meta(_mmseg(mmseg_name))
    assert isinstance(model.backbone, HRNet) and model.backbone.arch == arch
    print(f'{name}: {_count(model)} parameters; mmseg {mmseg_name}: {_count(ref)}')
    assert _count(model) == _count(ref)
    assert list(model.state_dict()) == list(ref.state_dict())
    assert _shapes(model) == _shapes(ref)


@pytest.mark.parametrize('name', list(PAPER))
def test_paper_variant_adds_exactly_the_backbone_paper_weights(name):
    official_name = PAPER[name]
    arch = OFFICIAL[official_name][1]
    paper, official = _meta(_ours(name)), _meta(_ours(official_name))
    assert paper.backbone.fuse_order == 'upsample_first'
    assert paper.backbone.new_branch == 'from_all'

    with torch.device('meta'):
        paper_bb, official_bb = HRNet(arch=arch, fusion_mode='paper'), HRNet(arch=arch)
    paper_params = dict(paper_bb.named_parameters())
    official_params = dict(official_bb.named_parameters())
    added = sum(p.numel() for k, p in paper_params.items() if k not in official_params)
    dropped = sum(p.numel() for k, p in official_params.items() if k not in paper_params)
    backbone_difference = _count(paper_bb) - _count(official_bb)
    print(f'{name}: {_count(paper)} parameters, {official_name}: {_count(official)}; '
          f'paper backbone adds {added} (new-stream fusion rows), drops {dropped} '
          f'(transitions)')
    assert backbone_difference == added - dropped > 0
    assert _count(paper) - _count(official) == backbone_difference
    # Everything outside the backbone (both heads) is the same.
    heads = {k: v for k, v in _shapes(paper).items() if not k.startswith('backbone.')}
    assert heads == {k: v for k, v in _shapes(official).items() if not k.startswith('backbone.')}


INPUT_HW = (64, 128)


@pytest.fixture(scope='module')
def hr18_pair():
    """mmseg's ocrnet_hr18 with random conv weights and BN statistics, and ours loaded strictly
    from its state dict (BN, not SyncBN: one process)."""
    ref = randomize_conv_bn_(build_config_model(
        _mmseg(OFFICIAL['ocrnet_hr18_cityscapes.py'][0])))
    ours = build_config_model(_ours('ocrnet_hr18_cityscapes.py'))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


@pytest.mark.parametrize('hw', [INPUT_HW, (50, 90)], ids=['64x128', 'odd_50x90'])
def test_mmseg_ocrnet_state_dict_gives_identical_outputs(hr18_pair, hw):
    """Eval mode; 50x90 makes odd stream sizes (13x23 -> 7x12 -> 4x6), where the fusion's
    upsampling takes mmseg's two steps."""
    ours, ref = hr18_pair
    ours.eval(), ref.eval()
    x = torch.randn(1, 3, *hw)
    metas = [dict(img_shape=hw, ori_shape=hw, pad_shape=hw)]
    with torch.no_grad():
        feats, ref_feats = ours.extract_feat(x), ref.extract_feat(x)
        assert [tuple(f.shape[1:2]) for f in feats] == [(18, ), (36, ), (72, ), (144, )]
        assert all(torch.equal(a, b) for a, b in zip(feats, ref_feats))
        regions = ours.decode_head[0](feats)     # the FCNHead's soft object regions
        assert tuple(regions.shape) == (1, 19, *feats[0].shape[2:])
        assert torch.equal(regions, ref.decode_head[0](ref_feats))
        ocr = ours.decode_head[1](feats, regions)
        assert torch.equal(ocr, ref.decode_head[1](ref_feats, regions))
        logits = ours.encode_decode(x, metas)
        assert tuple(logits.shape) == (1, 19, *hw)
        assert torch.equal(logits, ref.encode_decode(x, metas))
    assert logits.std() > 0


def test_mmseg_ocrnet_state_dict_gives_identical_training_losses(hr18_pair):
    """Train mode (batch statistics): both heads' losses and the updated BN statistics."""
    ours, ref = hr18_pair
    ours.train(), ref.train()
    h, w = INPUT_HW
    x = torch.randn(2, 3, h, w)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, h, w)))
        samples.append(sample)
    losses, ref_losses = ours.loss(x, samples), ref.loss(x, samples)
    assert set(losses) == {'decode_0.loss_ce', 'decode_0.acc_seg', 'decode_1.loss_ce',
                           'decode_1.acc_seg'}
    assert set(losses) == set(ref_losses)
    assert all(torch.equal(losses[k], ref_losses[k]) for k in losses)
    assert losses['decode_1.loss_ce'].item() > 0
    state, ref_state = ours.state_dict(), ref.state_dict()
    assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)
