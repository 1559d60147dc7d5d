"""Item 2 of issue 7, the proof part: tools/dist_train.sh with 2 gloo processes really shards
the data and really all-reduces the gradients, and tools/dist_test.sh evaluates exactly like
one process. (tests/tools/test_dist_train.py checks that both tools run.)

Each rank records the images of its batches and, after training, its parameters
(HrplusTestRecordHook). Different images per rank + identical parameters after 3 steps is
only possible if the gradients were averaged across ranks.
"""
import json
import re
import socket

import pytest
import torch

from mmseg_hrplus.checkpoint import read_checkpoint
from tests.helpers.tiny_run import make_data, output, run_tool, tool_env, write_config

ITERS = 3
METRIC_RE = re.compile(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')


def free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope='module')
def dist_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist_consistency')
    # 3 validation images: DefaultSampler pads 2 ranks to 4; the padding must not count twice
    config = write_config(root / 'tiny.py', make_data(root / 'data', num_train=8, num_val=3),
                          max_iters=ITERS, ckpt_interval=ITERS, val_interval=100)
    work_dir = root / 'work_dir'
    train = run_tool(['dist_train.sh', str(config), '2', '--work-dir', str(work_dir)],
                     env=tool_env(PORT=free_port(), HRPLUS_TEST_RECORD='1'))
    return dict(root=root, config=config, work_dir=work_dir, train=train)


def test_ranks_saw_different_samples(dist_run):
    assert dist_run['train'].returncode == 0, output(dist_run['train'])
    seen = {}
    for rank in (0, 1):
        lines = (dist_run['work_dir'] / f'samples_rank{rank}.jsonl').read_text().splitlines()
        seen[rank] = {rec['iter']: rec['samples'] for rec in map(json.loads, lines)}
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(1, ITERS + 1))
    for it in range(1, ITERS + 1):
        assert len(seen[0][it]) == len(seen[1][it]) == 2
        assert not set(seen[0][it]) & set(seen[1][it]), (it, seen[0][it], seen[1][it])
    # the first epoch (8 images, 4 per step) is a partition of the training set
    first_epoch = [img for it in (1, 2) for rank in (0, 1) for img in seen[rank][it]]
    assert len(set(first_epoch)) == 8


def test_ranks_hold_identical_parameters(dist_run):
    assert dist_run['train'].returncode == 0, output(dist_run['train'])
    work_dir = dist_run['work_dir']
    final, init = ([torch.load(work_dir / f'{name}_rank{r}.pth', weights_only=True)
                    for r in (0, 1)] for name in ('params', 'params_init'))
    assert final[0].keys() == final[1].keys() and len(final[0]) > 400
    assert [k for k in final[0] if not torch.equal(final[0][k], final[1][k])] == []
    # ... after training moved them (AdamW moves every parameter with a gradient)
    moved = [k for k in final[0] if not torch.equal(final[0][k], init[0][k])]
    assert len(moved) == len(final[0])
    # and rank 0's checkpoint holds those parameters
    ckpt = read_checkpoint(work_dir / f'iter_{ITERS}.pth')  # an mmengine checkpoint
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in final[0].items())


@pytest.fixture(scope='module')
def evaluations(dist_run):
    assert dist_run['train'].returncode == 0, output(dist_run['train'])
    checkpoint = str(dist_run['work_dir'] / f'iter_{ITERS}.pth')
    root = dist_run['root']
    dist = run_tool(['dist_test.sh', str(dist_run['config']), checkpoint, '2',
                     '--work-dir', str(root / 'test_dist'), '--out', str(root / 'pred_dist')],
                    env=tool_env(PORT=free_port()))
    single = run_tool(['test.py', str(dist_run['config']), checkpoint,
                       '--work-dir', str(root / 'test_single'), '--out',
                       str(root / 'pred_single')])
    return dict(root=root, dist=dist, single=single)


def test_dist_test_evaluates_like_one_process(evaluations):
    for name in ('dist', 'single'):
        assert evaluations[name].returncode == 0, output(evaluations[name])
    metrics = {name: METRIC_RE.findall(evaluations[name].stdout + evaluations[name].stderr)
               for name in ('dist', 'single')}
    assert len(metrics['single']) == 1, metrics
    assert metrics['dist'] == metrics['single']
    root = evaluations['root']
    dist_files = sorted(p.name for p in (root / 'pred_dist').glob('*.png'))
    single_files = sorted(p.name for p in (root / 'pred_single').glob('*.png'))
    assert len(dist_files) == 3 and dist_files == single_files
    for name in dist_files:
        assert (root / 'pred_dist' / name).read_bytes() == (root / 'pred_single' / name
                                                            ).read_bytes()
