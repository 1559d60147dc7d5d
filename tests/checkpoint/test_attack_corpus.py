"""The attack corpus (attack_corpus.py), read in a separate process through ``read_checkpoint``
and mmengine's ``CheckpointLoader`` (what every mmengine, mmseg and mmdet load path calls).

For every file: the reader refuses it or finds it damaged (or loads it, for the legitimate
ones), with a one-line message naming the file and the reason; no file outside the corpus
folder changed; no module was imported by the read; the process neither crashed nor hung and
its peak memory rose by less than a bound; the marker that code from the file would create
does not exist.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.attack_corpus import CASES, Context, legit_checkpoint

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

WORKER = Path(__file__).with_name('corpus_worker.py')
TIME_LIMIT_SECONDS = 300
PEAK_RISE_LIMIT_MB = 100


@pytest.fixture(scope='module')
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp('corpus')
    watched = tmp_path_factory.mktemp('watched')
    victim = watched / 'victim.cfg'
    victim.write_text('secret_token = 1234\n')
    os.chmod(victim, 0o600)
    ctx = Context(victim=victim, marker=watched / 'marker')
    warmup = root / 'warmup.pth'
    warmup.write_bytes(legit_checkpoint(ctx))
    manifest = []
    for case in CASES:
        path = root / f'{case.name}.pth'
        path.write_bytes(case.make(ctx))
        manifest.append({'name': case.name, 'path': str(path), 'warmup': str(warmup)})
    (root / 'manifest.json').write_text(json.dumps(manifest))
    try:
        run = subprocess.run([sys.executable, str(WORKER), str(root / 'manifest.json'),
                              str(watched), str(ctx.marker)], capture_output=True, text=True,
                             timeout=TIME_LIMIT_SECONDS)
        stdout, code = run.stdout, run.returncode
    except subprocess.TimeoutExpired as err:
        stdout, code = (err.stdout or b'').decode(), 'timeout'
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith('{')]
    started = [line['start'] for line in lines if 'start' in line]
    done = {line['name']: line for line in lines if 'name' in line}
    return dict(done=done, started=started, code=code, root=root,
                stderr=run.stderr[-2000:] if code != 'timeout' else '')


def test_worker_read_every_file(reports):
    assert reports['code'] == 0, (reports['code'], reports['started'][-1:], reports['stderr'])
    assert set(reports['done']) == {case.name for case in CASES}


@pytest.mark.parametrize('case', CASES, ids=[case.name for case in CASES])
def test_case(reports, case):
    assert case.name in reports['done'], (
        f'the worker stopped at {reports["started"][-1:]} ({reports["code"]})')
    path = reports['root'] / f'{case.name}.pth'
    for label, seen in ((label, reports['done'][case.name][label])
                        for label in ('read_checkpoint', 'CheckpointLoader')):
        where = f'{case.name} via {label}: {seen}'
        assert seen['kind'] == case.expect, where
        if case.expect != 'loads':
            message = seen['message']
            assert '\n' not in message, where
            assert (message.startswith(f'refused checkpoint {path}: ') if case.expect ==
                    'refused' else message.startswith(f'cannot read checkpoint {path} (')), where
            import re
            assert re.search(case.reason, message), where
        assert seen['new_modules'] == [], where
        assert not seen['watched_changed'], where
        assert not seen['marker'], where
        assert seen['peak_rise_mb'] < PEAK_RISE_LIMIT_MB, where
