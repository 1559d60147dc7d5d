"""Shared by the tests of tools/: a tiny synthetic dataset, a tiny training config, tool runs.

The config is the quickstart one (HRNet-W18-small + FCN) on 64x128 synthetic Cityscapes-layout
images, batch 2, deterministic CPU, with the test-only hooks of tests/helpers/probe_hooks.py.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from mmseg_hrplus.datasets.synthetic_cityscapes import make_synthetic_cityscapes

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / 'configs' / 'quickstart' / 'hrnet_w18s_synthetic.py'

_TEMPLATE = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['mmseg_hrplus', 'tests.helpers.probe_hooks'],
                      allow_failed_imports=False)
data_root = {data_root!r}
crop_size = (64, 128)
model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(dropout_ratio={dropout}))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers={num_workers},
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end={max_iters},
                        by_epoch=False)]
train_cfg = dict(max_iters={max_iters}, val_interval={val_interval})
default_hooks = dict(checkpoint=dict(interval={ckpt_interval}), logger=dict(interval=1),
                     visualization=dict(draw=False))
randomness = dict(seed=0, deterministic=True)
custom_hooks = [dict(type='HrplusTestKillHook'), dict(type='HrplusTestNaNHook'),
                dict(type='HrplusTestRecordHook')]
'''


def make_data(root: Path, num_train: int = 6, num_val: int = 3) -> Path:
    make_synthetic_cityscapes(root, num_train=num_train, num_val=num_val, size=(64, 128))
    return root


def write_config(path: Path, data_root: Path, max_iters: int = 6, ckpt_interval: int = 3,
                 val_interval: int = 3, dropout: float = 0.1, num_workers: int = 0) -> Path:
    """A training config deriving from the quickstart config; see the module docstring.

    ``dropout`` > 0 and the random augmentations make the run draw from every generator
    (torch for dropout, numpy/python in the pipeline), which is what exact resume must handle.
    """
    path.write_text(_TEMPLATE.format(
        base=str(QUICKSTART), data_root=str(data_root), max_iters=max_iters,
        ckpt_interval=ckpt_interval, val_interval=val_interval, dropout=dropout,
        num_workers=num_workers))
    return path


def tool_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    for key in [k for k in env if k.startswith('HRPLUS_TEST_')]:
        del env[key]
    env.update(extra)
    return env


def run_tool(args: List[str], timeout: float = 600, env: Optional[Dict[str, str]] = None
             ) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` (or ``bash tools/<x>.sh`` for a .sh) from the repo root."""
    cmd = ['bash'] if args[0].endswith('.sh') else [sys.executable]
    return subprocess.run(cmd + [str(REPO / 'tools' / args[0])] + args[1:], cwd=REPO,
                          env=env or tool_env(), capture_output=True, text=True,
                          timeout=timeout)


def output(proc: subprocess.CompletedProcess, tail: int = 4000) -> str:
    return f'--- stdout\n{proc.stdout[-tail:]}\n--- stderr\n{proc.stderr[-tail:]}'
