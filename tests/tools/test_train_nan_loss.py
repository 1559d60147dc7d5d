"""Item 4 of issue 7 (NaN loss): tools/train.py stops at the first non-finite loss with a
message naming the iteration, exits non-zero, and the last good checkpoint stays."""
import math

import pytest
from mmengine.runner.checkpoint import _load_checkpoint

from tests.helpers.tiny_run import make_data, output, run_tool, tool_env, write_config

NAN_AT = 3


@pytest.fixture(scope='module')
def nan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('nan')
    config = write_config(root / 'tiny.py', make_data(root / 'data'), max_iters=5,
                          ckpt_interval=1, val_interval=100, dropout=-1)
    work_dir = root / 'work_dir'
    proc = run_tool(['train.py', str(config), '--work-dir', str(work_dir)],
                    env=tool_env(HRPLUS_TEST_NAN_AT=str(NAN_AT)))
    return dict(proc=proc, work_dir=work_dir)


def test_training_stops_with_the_iteration_in_the_message(nan_run):
    proc = nan_run['proc']
    assert proc.returncode != 0, output(proc)
    last_line = proc.stderr.strip().splitlines()[-1]
    good = nan_run['work_dir'] / f'iter_{NAN_AT - 1}.pth'
    assert last_line.startswith(f'FloatingPointError: loss is nan at iteration {NAN_AT} '
                                '(loss=nan, decode.loss_ce=nan on rank 0)'), last_line
    assert f'last checkpoint: {good}' in last_line
    assert f'Iter(train) [{NAN_AT + 1}/5]' not in proc.stdout + proc.stderr


def test_the_last_good_checkpoint_stays_and_loads(nan_run):
    work_dir = nan_run['work_dir']
    # interval 1: every finished iteration saved one; the NaN iteration did not
    assert sorted(p.name for p in work_dir.glob('iter_*.pth')) == [
        f'iter_{i}.pth' for i in range(1, NAN_AT)]
    last = (work_dir / 'last_checkpoint').read_text().strip()
    assert last == str(work_dir / f'iter_{NAN_AT - 1}.pth')
    ckpt = _load_checkpoint(last, map_location='cpu')
    assert ckpt['meta']['iter'] == NAN_AT - 1
    floats = [v for v in ckpt['state_dict'].values() if v.dtype.is_floating_point]
    assert len(floats) > 700 and all(v.isfinite().all() for v in floats)
    assert all(math.isfinite(v['exp_avg'].sum()) for v in ckpt['optimizer']['state'].values())
