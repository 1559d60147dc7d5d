"""Weights shared as safetensors: convert.py writes them (``--format safetensors`` or a
``.safetensors`` name), with mmengine's meta in the header; every loading path reads them back
to the same tensors; and the files agree with the reference safetensors implementation both
ways (ours read there, theirs read here)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from mmseg_hrplus.checkpoint import read_checkpoint, save_safetensors

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

REPO = Path(__file__).resolve().parents[2]


def convert_cli(argv):
    spec = importlib.util.spec_from_file_location(
        'hrplus_convert', REPO / 'tools' / 'model_converters' / 'convert.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].running_mean.uniform_()
    state = model.state_dict()
    state['half'] = torch.arange(3, dtype=torch.float16)
    state['bf16'] = torch.arange(3, dtype=torch.bfloat16)
    state['shares_memory'] = state['0.weight'].view(-1)[:5]
    path = tmp_path / 'iter_2.pth'
    torch.save({'state_dict': state, 'optimizer': {'state': {}},
                'meta': {'iter': 2, 'seed': np.int64(7),
                         'dataset_meta': {'classes': ('road', 'car')}}}, path)
    return model, state, path


@pytest.mark.parametrize('how', ['suffix', 'flag'])
def test_mmengine_checkpoint_to_safetensors(trained, tmp_path, how, capsys):
    model, state, path = trained
    dst = tmp_path / ('weights.safetensors' if how == 'suffix' else 'weights.bin')
    convert_cli(['mmengine', str(path), str(dst)] + (['--format', 'safetensors']
                                                     if how == 'flag' else []))
    assert f'{len(state)} tensors written' in capsys.readouterr().out
    assert dst.read_bytes()[8:9] == b'{'  # the safetensors header, no pickle
    loaded = read_checkpoint(str(dst))
    assert list(loaded['state_dict']) == list(state)
    for key, value in state.items():
        assert loaded['state_dict'][key].dtype == value.dtype
        assert torch.equal(loaded['state_dict'][key], value), key
    meta = loaded['meta']
    assert meta['iter'] == 2 and meta['seed'] == 7 and meta['source'] == 'mmengine'
    assert meta['dataset_meta'] == {'classes': ['road', 'car']}  # JSON: tuples are lists
    assert meta['original_file'] == 'iter_2.pth'


def test_every_loading_path_reads_safetensors(trained, tmp_path):
    model, state, _ = trained
    dst = tmp_path / 'weights.safetensors'
    save_safetensors(str(dst), {k: v for k, v in state.items() if k.startswith('0.') or
                                k.startswith('1.')}, {'iter': 2})
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    load_checkpoint(fresh, str(dst), map_location='cpu', strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert _load_checkpoint(str(dst))['meta'] == {'iter': 2}


def test_agrees_with_the_reference_implementation(trained, tmp_path):
    safetensors_torch = pytest.importorskip('safetensors.torch')
    _, state, _ = trained
    ours = tmp_path / 'ours.safetensors'
    save_safetensors(str(ours), state, {'iter': 2})
    theirs_read = safetensors_torch.load_file(str(ours))
    assert set(theirs_read) == set(state)
    for key, value in state.items():
        assert torch.equal(theirs_read[key], value), key
    theirs = tmp_path / 'theirs.safetensors'
    safetensors_torch.save_file({k: v.contiguous().clone() for k, v in state.items()},
                                str(theirs), metadata={'format': 'pt'})
    ours_read = read_checkpoint(str(theirs))  # no mmengine meta: a plain state dict
    assert set(ours_read) == set(state)
    for key, value in state.items():
        assert torch.equal(ours_read[key], value), key


def test_unknown_output_format_is_named(trained, tmp_path):
    from mmseg_hrplus.converters.registry import convert_file
    _, _, path = trained
    with pytest.raises(ValueError, match="output format 'npz' is not one of: pth, safetensors"):
        convert_file('mmengine', str(path), str(tmp_path / 'x.npz'), output_format='npz')
