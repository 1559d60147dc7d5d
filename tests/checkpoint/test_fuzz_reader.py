"""The mutation fuzzer (fuzz_reader.py) with CI's fixed budget: every mutated checkpoint loads
or raises CheckpointError in one line, no input hangs or raises the peak memory past its
bound, and the process does not crash. ``make fuzz`` runs the long mode."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

REPO = Path(__file__).resolve().parents[2]
CI_SECONDS = 40


def test_fuzzer_finds_nothing_in_its_ci_budget(tmp_path):
    run = subprocess.run([sys.executable, '-m', 'tests.checkpoint.fuzz_reader', '--seconds',
                          str(CI_SECONDS), '--seed', '20', '--out', str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=CI_SECONDS + 240)
    assert run.returncode == 0, (run.returncode, run.stdout[-3000:], run.stderr[-3000:])
    report = json.loads(run.stdout[run.stdout.index('{'):])
    assert report['findings'] == []
    # it did fuzz: many executions, reaching every kind of outcome
    assert report['executions'] >= 2000, report
    assert {'loads', 'CheckpointError', 'UnsafeCheckpointError'} <= set(report['outcomes'])
    assert {'zip_p2', 'zip_p5', 'legacy', 'safetensors'} <= set(report['seeds'])
