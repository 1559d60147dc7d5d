"""mmseg_hrplus.benchmark.memory: the probe in this process, and through
``python -m mmseg_hrplus.benchmark.memory`` in a new one."""
import sys
from pathlib import Path

import pytest

from mmseg_hrplus.benchmark.memory import memory_probe, probe_command, run_memory_probe
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs


@pytest.mark.parametrize('winograd', [False, True])
def test_memory_probe_in_process(tmp_path, winograd, one_thread):
    ours, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    result = memory_probe(str(ours), True, 2, (32, 32), 'cpu', winograd)
    assert result['with_cp'] is True
    assert result['before_mb'] > 0
    assert result['peak_mb'] >= result['before_mb']
    assert result['step_peak_mb'] == result['peak_mb'] - result['before_mb']
    if Path('/proc/self/clear_refs').exists():
        assert result['method'] == 'VmHWM after clear_refs'


def test_probe_command():
    assert probe_command('c.py', True, 2, (32, 48), winograd=True, threads=1) == [
        sys.executable, '-m', 'mmseg_hrplus.benchmark.memory', 'c.py', '--batch', '2',
        '--shape', '32', '48', '--device', 'cpu', '--with-cp', '--winograd', '--threads', '1']
    assert probe_command('c.py', False, 1, (8, 8))[-2:] == ['--device', 'cpu']


def test_probe_in_its_own_process(tmp_path, repo_root):
    ours, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    result = run_memory_probe(str(ours), False, 2, (32, 32), threads=1, cwd=str(repo_root))
    assert result['with_cp'] is False
    assert result['peak_mb'] >= result['before_mb'] > 0
    assert result['step_peak_mb'] == pytest.approx(result['peak_mb'] - result['before_mb'])
