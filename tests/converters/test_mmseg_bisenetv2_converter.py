"""mmseg BiSeNetV2 -> ours: a randomly initialised mmseg bisenetv2_fcn (random BN statistics
too), converted, gives the same logits in our BiSeNetV2 + BGAHead + BoosterHead model; same
parameter count (3.3589M without auxiliary heads); the command-line tool; refused inputs."""
import importlib.util
from pathlib import Path

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS as MMSEG_MODELS

from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2

REPO = Path(__file__).resolve().parents[2]
OUR_CONFIG = REPO / 'configs' / 'bisenetv2' / 'bisenetv2_cityscapes-1024x1024.py'
MMSEG_CONFIG = (Path(mmseg.__file__).parent / '.mim' / 'configs' / 'bisenetv2'
                / 'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py')
CLI = REPO / 'tools' / 'model_converters' / 'convert.py'


def count(module):
    return sum(p.numel() for p in module.parameters())


def build(path, with_aux=True):
    cfg = Config.fromfile(str(path))
    if not with_aux:
        cfg.model.pop('auxiliary_head')
    with DefaultScope.overwrite_default_scope('mmseg'):  # mmseg's data preprocessor
        return revert_sync_batchnorm(MMSEG_MODELS.build(cfg.model))  # SyncBN -> BN


def randomise_(module, seed=0):
    """Random weights AND BN statistics, scaled to keep activations O(1) through the net."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith('running_var') or (tensor.dim() == 1 and name.endswith('weight')):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.dim() == 1:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen)
                             * (2.0 / tensor[0].numel())**0.5)
    return module


@pytest.fixture(scope='module')
def mmseg_model():
    torch.manual_seed(0)
    return randomise_(build(MMSEG_CONFIG)).eval()


def test_converted_model_gives_mmseg_logits(mmseg_model):
    ours = build(OUR_CONFIG).eval()
    ours.load_state_dict(convert_mmseg_bisenetv2(mmseg_model.state_dict()))  # strict
    x = torch.randn(2, 3, 72, 100)  # not a multiple of 32
    with torch.no_grad():
        ref, got = mmseg_model(x, mode='tensor'), ours(x, mode='tensor')
        ref_full, got_full = mmseg_model.predict(x), ours.predict(x)
    assert got.shape == ref.shape == (2, 19, 9, 13)
    assert ref.abs().max() > 0.1  # the comparison is not between zeros
    # the converted model runs mmseg's ops in mmseg's order: bit for bit equal logits
    assert torch.equal(got, ref), (got - ref).abs().max().item()
    for a, b in zip(ref_full, got_full):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


def test_parameter_counts_match_mmseg():
    ref, ours = build(MMSEG_CONFIG, with_aux=False), build(OUR_CONFIG, with_aux=False)
    assert count(ours) == count(ref)
    assert round(count(ours) / 1e6, 4) == 3.3589  # mmseg's published 3.3589M
    ref_aux, ours_aux = build(MMSEG_CONFIG), build(OUR_CONFIG)
    assert count(ours_aux.auxiliary_head) == count(ref_aux.auxiliary_head)


def test_command_line_tool(mmseg_model, tmp_path):
    src, dst = tmp_path / 'mmseg.pth', tmp_path / 'ours.pth'
    torch.save({'state_dict': mmseg_model.state_dict(), 'meta': {'dataset_meta': {
        'classes': ('road', 'sidewalk')}}}, src)
    spec = importlib.util.spec_from_file_location('hrplus_convert_cli', CLI)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['mmseg-bisenetv2', str(src), str(dst)])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['dataset_meta']['classes'] == ('road', 'sidewalk')
    assert saved['meta']['source'] == 'mmseg-bisenetv2'
    assert saved['meta']['original_file'] == 'mmseg.pth' and saved['meta']['dropped_keys'] == {}
    ours = build(OUR_CONFIG)
    ours.load_state_dict(saved['state_dict'])  # strict
    assert set(saved['state_dict']) == set(ours.state_dict())


def test_unknown_keys_and_non_bisenet_checkpoints_are_refused(mmseg_model):
    state = dict(mmseg_model.state_dict())
    state['decode_head.convs.1.conv.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r'1 keys are not part of an mmseg BiSeNetV2 segmentor'
                                         r'.*decode_head\.convs\.1\.conv\.weight'):
        convert_mmseg_bisenetv2(state)
    no_bga = {k: v for k, v in mmseg_model.state_dict().items() if '.bga.' not in k}
    with pytest.raises(ValueError, match=r'no backbone\.bga\.\* keys'):
        convert_mmseg_bisenetv2(no_bga)
    # DDP-wrapped checkpoints ('module.' prefix) under 'state_dict' convert the same.
    wrapped = {'state_dict': {f'module.{k}': v for k, v in mmseg_model.state_dict().items()}}
    assert list(convert_mmseg_bisenetv2(wrapped)) == list(
        convert_mmseg_bisenetv2(mmseg_model.state_dict()))
