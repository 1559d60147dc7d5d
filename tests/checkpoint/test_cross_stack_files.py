"""Checkpoints written by the other stack read here as they were written: each of the committed
files (tests/data/checkpoints, written by torch 2.13 and by torch 2.1) gives back exactly the
content make_checkpoints.py saved, and the Runner's checkpoints resume-ready objects."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmseg_hrplus.checkpoint import read_checkpoint

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

FOLDER = Path(__file__).resolve().parents[1] / 'data' / 'checkpoints'
_spec = importlib.util.spec_from_file_location('make_checkpoints',
                                               FOLDER / 'make_checkpoints.py')
make_checkpoints = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_checkpoints)
FORMAT_FILES = sorted(p.name for p in FOLDER.glob('torch*_*.pth') if 'runner' not in p.name)
RUNNER_FILES = sorted(p.name for p in FOLDER.glob('torch*_runner.pth'))


def test_both_stacks_wrote_files():
    assert {'torch2.1_zip.pth', 'torch2.1_legacy.pth', 'torch2.13_zip.pth',
            'torch2.13_zip_protocol5.pth', 'torch2.13_legacy.pth'} <= set(FORMAT_FILES)
    assert {'torch2.1_runner.pth', 'torch2.13_runner.pth'} <= set(RUNNER_FILES)


@pytest.mark.parametrize('name', FORMAT_FILES)
def test_format_file_gives_back_what_was_saved(name):
    expected = make_checkpoints.content()
    loaded = read_checkpoint(str(FOLDER / name), map_location='cpu')
    for key, value in expected['state_dict'].items():
        assert loaded['state_dict'][key].dtype == value.dtype, key
        assert torch.equal(loaded['state_dict'][key], value), key
    assert loaded['state_dict']._metadata == expected['state_dict']._metadata
    assert torch.equal(loaded['optimizer']['state'][0]['momentum_buffer'],
                       expected['optimizer']['state'][0]['momentum_buffer'])
    assert loaded['optimizer']['param_groups'] == expected['optimizer']['param_groups']
    meta = loaded['meta']
    assert type(meta['seed']) is np.int64 and meta['seed'] == 42
    assert type(meta['best']) is np.float64 and meta['best'] == 0.75
    assert meta['hist'].dtype == np.int32 and np.array_equal(meta['hist'],
                                                             expected['meta']['hist'])
    assert meta['dataset_meta'] == expected['meta']['dataset_meta']
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert (buffer.min(), buffer.max(), buffer.current(), buffer.mean()) == (0.5, 2.5, 2.5, 1.5)
    # a view shares its storage with the tensor it views, as it did when saved
    view = loaded['shared_view']
    assert torch.equal(view, expected['shared_view'])
    assert view.untyped_storage().data_ptr() == \
        loaded['state_dict']['conv.weight'].untyped_storage().data_ptr()


@pytest.mark.parametrize('name', RUNNER_FILES)
def test_runner_checkpoint_of_either_stack(name):
    loaded = read_checkpoint(str(FOLDER / name), map_location='cpu')
    assert set(loaded['state_dict']) == {'linear.weight', 'linear.bias'}
    assert loaded['meta']['iter'] == 2 and loaded['meta']['seed'] == 0
    momentum = loaded['optimizer']['state'][0]['momentum_buffer']
    assert momentum.shape == (1, 2) and torch.isfinite(momentum).all()
    scalars = loaded['message_hub']['log_scalars']
    assert isinstance(scalars['train/loss'], HistoryBuffer)
    assert len(scalars['train/loss'].data[0]) == 2  # one value per iteration
