"""mmengine's own training checkpoints (HistoryBuffer, numpy scalars, optimizer and scheduler
state) load and resume through the safe reader on every torch; without it, plain mmengine
either refuses them (torch >= 2.6) or runs code from a crafted one (torch < 2.6)."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from tests.helpers.crafted_pickles import RunsCode
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch.utils.data import Dataset

from mmseg_hrplus.checkpoint import UnsafeCheckpointError

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

TORCH_WEIGHTS_ONLY_BY_DEFAULT = tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 6)


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - labels) ** 2).mean())
        return out


class ToyDataset(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.full((2,), float(idx)), labels=torch.ones(1))


def train_toy(work_dir, max_iters, resume=False):
    runner = Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler'),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        resume=resume, experiment_name=f'toy_{max_iters}_{resume}_{os.getpid()}')
    runner.train()
    return runner


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('toy')
    train_toy(work_dir, max_iters=2)
    return work_dir


def test_mmengine_checkpoint_loads_with_its_objects(mmengine_checkpoint):
    ckpt = _load_checkpoint(str(mmengine_checkpoint / 'iter_2.pth'), map_location='cpu')
    assert set(ckpt) >= {'meta', 'state_dict', 'message_hub', 'optimizer'}
    buffers = ckpt['message_hub']['log_scalars']
    assert isinstance(buffers['train/loss'], HistoryBuffer)
    assert buffers['train/loss'].mean() == pytest.approx(buffers['train/loss'].data[0].mean())
    assert ckpt['meta']['iter'] == 2


def test_resume_continues_from_checkpoint(mmengine_checkpoint):
    runner = train_toy(mmengine_checkpoint, max_iters=4, resume=True)
    assert runner.iter == 4
    log = (mmengine_checkpoint / 'last_checkpoint').read_text()
    assert log.strip().endswith('iter_4.pth')


def plain_mmengine_load(path) -> str:
    """Load ``path`` with mmengine's own loaders in a fresh process that imports mmseg_hrplus
    with MMSEG_HRPLUS_NO_SETUP=1 (the documented opt-out: mmengine as it comes)."""
    code = textwrap.dedent(f'''
        import mmseg_hrplus
        from mmengine.runner.checkpoint import _load_checkpoint
        try:
            _load_checkpoint({str(path)!r}, map_location='cpu')
        except Exception as e:
            print('REFUSED', type(e).__name__)
        else:
            print('LOADED')
    ''')
    env = dict(os.environ, MMSEG_HRPLUS_NO_SETUP='1')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=env, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))))
    return out.stdout.strip().splitlines()[-1]


def test_without_our_loaders_mmengine_refuses_or_runs_code(mmengine_checkpoint, tmp_path):
    """Why the reader exists, shown on the running torch: torch >= 2.6 refuses mmengine's own
    checkpoint, torch < 2.6 runs a crafted one."""
    if TORCH_WEIGHTS_ONLY_BY_DEFAULT:
        result = plain_mmengine_load(mmengine_checkpoint / 'iter_2.pth')
        assert result == 'REFUSED UnpicklingError'
    else:
        marker = tmp_path / 'ran'
        evil = tmp_path / 'evil.pth'
        torch.save({'meta': RunsCode(marker)}, evil)
        assert plain_mmengine_load(evil) == 'LOADED'
        assert marker.exists()


class ReachesForGetattr:
    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


@pytest.mark.parametrize('payload', ['os_system', 'getattr'])
def test_code_running_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / 'pwned'
    evil = RunsCode(marker) if payload == 'os_system' else ReachesForGetattr()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': evil}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(str(path), map_location='cpu')
    assert isinstance(info.value, pickle.UnpicklingError)
    assert not marker.exists()
