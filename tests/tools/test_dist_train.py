"""tools/dist_train.sh and tools/dist_test.sh with 2 gloo processes on CPU (torchrun)."""
import os
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from mmseg_hrplus.datasets.synthetic_cityscapes import make_synthetic_cityscapes

pytestmark = pytest.mark.torch21

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = 'configs/quickstart/hrnet_w18s_synthetic.py'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def dist_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    make_synthetic_cityscapes(root / 'data', num_train=8, num_val=2, size=(64, 128))
    options = [f'{key}.dataset.data_root={root / "data"}'
               for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    options += ['train_dataloader.batch_size=2', 'train_cfg.max_iters=4',
                'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
                'param_scheduler.0.end=4', 'model.data_preprocessor.size=None',
                'model.data_preprocessor.size_divisor=32']
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    work_dir = root / 'work_dir'
    train = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work_dir),
         '--cfg-options', *options], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    return dict(root=root, work_dir=work_dir, options=options, env=env, train=train)


def test_two_gloo_processes_train(dist_run):
    train = dist_run['train']
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    ckpt = _load_checkpoint(str(dist_run['work_dir'] / 'iter_4.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 4
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.dtype.is_floating_point)


def test_two_gloo_processes_evaluate(dist_run):
    env = dict(dist_run['env'])
    test = subprocess.run(
        ['bash', 'tools/dist_test.sh', CONFIG, str(dist_run['work_dir'] / 'iter_4.pth'), '2',
         '--work-dir', str(dist_run['root'] / 'test_dir'), '--cfg-options',
         *dist_run['options']], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'mIoU' in test.stdout + test.stderr
