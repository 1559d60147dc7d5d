"""A clone of this repository must work on its own: no tracked file may point into the sibling
directory the project was developed next to, and the test data the e2e tests need is tracked."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Built from two parts so that this file does not contain the string it searches for.
NEEDLE = '..' + '/shared'
FRAME = 'frankfurt_000000_000294'
SAMPLE_FILES = (
    f'leftImg8bit/val/frankfurt/{FRAME}_leftImg8bit.png',
    f'gtFine/val/frankfurt/{FRAME}_gtFine_labelIds.png',
    f'gtFine/val/frankfurt/{FRAME}_gtFine_labelTrainIds.png',
    f'gtFine/val/frankfurt/{FRAME}_gtFine_instanceIds.png',
)


def _tracked_files() -> list:
    if shutil.which('git') is None or not (REPO_ROOT / '.git').exists():
        pytest.skip('needs git and the repository (.git) to list tracked files')
    result = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO_ROOT, capture_output=True,
                            check=False)
    if result.returncode != 0:
        pytest.skip(f'git ls-files failed: {result.stderr.decode(errors="replace").strip()}')
    return [name for name in result.stdout.decode().split('\0') if name]


def test_no_tracked_file_refers_to_the_sibling_directory():
    offenders = []
    for name in _tracked_files():
        path = REPO_ROOT / name
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        data = path.read_bytes()
        if b'\0' in data[:8192]:  # binary (images, checkpoints)
            continue
        text = data.decode('utf-8', errors='replace')
        for lineno, line in enumerate(text.splitlines(), start=1):
            if NEEDLE in line:
                offenders.append(f'{name}:{lineno}: {line.strip()}')
    assert not offenders, (f'{len(offenders)} line(s) refer to {NEEDLE}, which a clone does not '
                           'have:\n' + '\n'.join(offenders))


def test_cityscapes_sample_frame_is_in_the_repository():
    root = REPO_ROOT / 'tests' / 'data' / 'cityscapes_sample'
    missing = [name for name in SAMPLE_FILES if not (root / name).is_file()]
    assert not missing, f'missing under {root}: {missing}'
    assert (REPO_ROOT / 'tests' / 'data' / 'README.md').is_file()


def test_cityscapes_sample_frame_is_tracked():
    tracked = set(_tracked_files())
    untracked = [name for name in SAMPLE_FILES
                 if f'tests/data/cityscapes_sample/{name}' not in tracked]
    assert not untracked, f'not tracked by git, so a clone would lack them: {untracked}'
