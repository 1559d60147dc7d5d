"""compat.py: mmengine checkpoints load on torch>=2.6 without opening code execution, and the
CPU DDP wrapper works where mmengine's default wrapping dies."""
import os
import pickle
import subprocess
import sys
import textwrap
from contextlib import nullcontext

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch.utils.data import Dataset

from mmseg_hrplus.compat import (CPUDistributedDataParallel, _history_buffer_getattr,
                                 distributed_teardown, safe_checkpoint_globals)


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


def test_mmengine_checkpoint_loads_with_weights_only(mmengine_checkpoint):
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


def test_same_checkpoint_is_refused_without_our_allow_list(mmengine_checkpoint):
    """Proves the test above depends on compat: plain mmengine on torch>=2.6 refuses it."""
    code = textwrap.dedent(f'''
        from mmengine.runner.checkpoint import _load_checkpoint
        try:
            _load_checkpoint({str(mmengine_checkpoint / "iter_2.pth")!r}, map_location='cpu')
        except Exception as e:
            print('REFUSED', type(e).__name__)
        else:
            print('LOADED')
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert 'REFUSED UnpicklingError' in out.stdout


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class ReachesForGetattr:
    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


@pytest.mark.parametrize('payload', ['os_system', 'getattr'])
def test_code_running_pickle_is_refused(tmp_path, payload):
    marker = tmp_path / 'pwned'
    evil = RunsCode(marker) if payload == 'os_system' else ReachesForGetattr()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': evil}, path)
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_guarded_getattr_only_gives_history_buffer_statistics():
    assert _history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer methods'):
        _history_buffer_getattr(os, 'system')
    names = [name for _, name in safe_checkpoint_globals()]
    assert 'builtins.getattr' in names
    assert all(obj is not getattr for obj, _ in safe_checkpoint_globals())


@pytest.fixture
def single_process_gloo(tmp_path):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_cpu_wrapper_drops_device_ids_and_reverts_syncbn(single_process_gloo):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4))
    # mmengine's Runner passes device_ids=[LOCAL_RANK]; torch's DDP refuses that on CPU.
    with pytest.raises(ValueError, match='device_ids'):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2), device_ids=[0])
    wrapped = CPUDistributedDataParallel(module=module, device_ids=[0])
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in wrapped.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in wrapped.modules())
    out = wrapped(torch.randn(2, 3, 8, 8))
    out.sum().backward()
    assert out.shape == (2, 4, 6, 6)


@pytest.mark.parametrize('fails', [False, True])
def test_distributed_teardown_closes_the_group(tmp_path, fails):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        with pytest.raises(RuntimeError, match='job failed') if fails else nullcontext():
            with distributed_teardown():
                assert dist.is_initialized()
                if fails:
                    raise RuntimeError('job failed')
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
