"""Item 3 of issue 7: a run killed after iteration k continues with `tools/train.py --resume`
and ends with the very weights of an uninterrupted run (deterministic CPU, same seed).

The config draws from every random generator: dropout in the head (torch), RandomResize,
RandomCrop, RandomFlip and PhotoMetricDistortion in the loader (numpy), validation in the
middle of the run. Without IterationSeedHook (added by tools/train.py) the resumed weights
differ by up to ~3 (measured), because the dropout stream after k iterations is not in the
checkpoint.
"""
import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from tests.helpers.tiny_run import make_data, output, run_tool, tool_env, write_config

pytestmark = pytest.mark.torch21

MAX_ITERS, CKPT_INTERVAL, KILL_AFTER = 6, 3, 4


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    data = make_data(root / 'data')
    config = write_config(root / 'tiny.py', data, max_iters=MAX_ITERS,
                          ckpt_interval=CKPT_INTERVAL, val_interval=CKPT_INTERVAL)
    full = run_tool(['train.py', str(config), '--work-dir', str(root / 'full')])
    killed = run_tool(['train.py', str(config), '--work-dir', str(root / 'killed')],
                      env=tool_env(HRPLUS_TEST_KILL_AFTER=str(KILL_AFTER)))
    after_kill = sorted(p.name for p in (root / 'killed').glob('iter_*.pth'))
    resumed = run_tool(['train.py', str(config), '--work-dir', str(root / 'killed'), '--resume'])
    return dict(root=root, full=full, killed=killed, resumed=resumed, after_kill=after_kill)


def test_the_run_was_really_killed_after_its_checkpoint(runs):
    assert runs['full'].returncode == 0, output(runs['full'])
    assert runs['killed'].returncode == -9, output(runs['killed'])  # SIGKILL, no cleanup
    assert runs['after_kill'] == [f'iter_{CKPT_INTERVAL}.pth']
    assert 'Iter(train) [4/6]' in runs['killed'].stdout + runs['killed'].stderr


def test_resume_continues_from_the_checkpoint(runs):
    resumed = runs['resumed']
    assert resumed.returncode == 0, output(resumed)
    log = resumed.stdout + resumed.stderr
    assert f'resumed epoch: 0, iter: {CKPT_INTERVAL}' in log
    assert f'Advance dataloader {CKPT_INTERVAL} steps' in log
    assert f'Iter(train) [{CKPT_INTERVAL}/6]' not in log  # no iteration is trained twice


def test_resumed_weights_equal_uninterrupted_weights(runs):
    assert runs['resumed'].returncode == 0, output(runs['resumed'])
    full = _load_checkpoint(str(runs['root'] / 'full' / f'iter_{MAX_ITERS}.pth'), 'cpu')
    resumed = _load_checkpoint(str(runs['root'] / 'killed' / f'iter_{MAX_ITERS}.pth'), 'cpu')
    assert full['meta']['iter'] == resumed['meta']['iter'] == MAX_ITERS
    assert full['state_dict'].keys() == resumed['state_dict'].keys()
    diffs = {key: (value.double() - resumed['state_dict'][key].double()).abs().max().item()
             for key, value in full['state_dict'].items()}
    assert len(diffs) > 800  # every parameter and BN buffer of HRNet-W18-small + FCN
    assert max(diffs.values()) == 0.0, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    # the optimizer (AdamW moments) and the LR schedule continue exactly too
    for full_state, resumed_state in zip(full['optimizer']['state'].values(),
                                         resumed['optimizer']['state'].values()):
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(full_state[name], resumed_state[name])
    assert full['param_schedulers'] == resumed['param_schedulers']
