"""Writes the small checkpoints committed beside this script, so that each stack's tests read
files the other stack wrote (tests/checkpoint/test_cross_stack_files.py) and the fuzzer starts
from them. Run once per stack; the content is deterministic, the file format is the stack's:

    .venv/bin/python tests/data/checkpoints/make_checkpoints.py
    .venv-torch21/bin/python tests/data/checkpoints/make_checkpoints.py

Per stack: ``torch<version>_<format>.pth`` for the zip format (pickle protocols 2 and 5) and
the legacy format, each holding :func:`content`, and ``torch<version>_runner.pth``, a checkpoint
mmengine's Runner saved after two training iterations of a tiny model.
"""
import collections
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def content():
    """What the format files hold: every kind of object mmengine checkpoints carry."""
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    for value in (0.5, 1.5, 2.5):
        buffer.update(value)
    weights = collections.OrderedDict(
        [('conv.weight', torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 8),
         ('bn.running_mean', torch.tensor([0.25, -0.5])),
         ('bn.num_batches_tracked', torch.tensor(7)),
         ('half', torch.arange(4, dtype=torch.float16)),
         ('bf16', torch.arange(3, dtype=torch.bfloat16))])
    weights._metadata = collections.OrderedDict([('', {'version': 1})])
    return {'state_dict': weights,
            'optimizer': {'state': {0: {'momentum_buffer': torch.full((2, 2), 0.125)}},
                          'param_groups': [{'lr': 0.01, 'momentum': 0.9, 'params': [0]}]},
            'meta': {'iter': 2, 'seed': np.int64(42), 'best': np.float64(0.75),
                     'hist': np.arange(6, dtype=np.int32).reshape(2, 3),
                     'dataset_meta': {'classes': ('road', 'car'), 'palette': [[1, 2, 3]]}},
            'message_hub': {'log_scalars': {'train/loss': buffer}},
            'shared_view': weights['conv.weight'].view(-1)[4:10]}


def runner_checkpoint(folder: Path) -> Path:
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(inputs)
            return {'loss': (out ** 2).mean()} if mode == 'loss' else out

    torch.manual_seed(0)
    data = [dict(inputs=torch.ones(2)) for _ in range(4)]
    runner = Runner(
        model=Tiny(), work_dir=str(folder), experiment_name=f'seed_{os.getpid()}',
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=2, val_interval=100),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=0))
    runner.train()
    return folder / 'iter_2.pth'


def main():
    version = '.'.join(torch.__version__.split('+')[0].split('.')[:2])
    stem = f'torch{version}'
    torch.save(content(), HERE / f'{stem}_zip.pth')
    torch.save(content(), HERE / f'{stem}_zip_protocol5.pth', pickle_protocol=5)
    torch.save(content(), HERE / f'{stem}_legacy.pth', _use_new_zipfile_serialization=False)
    with tempfile.TemporaryDirectory() as folder:
        (HERE / f'{stem}_runner.pth').write_bytes(runner_checkpoint(Path(folder)).read_bytes())
    print('\n'.join(sorted(p.name for p in HERE.glob(f'{stem}_*.pth'))))


if __name__ == '__main__':
    sys.exit(main())
