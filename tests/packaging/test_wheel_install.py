"""The wheel, installed the way a user installs it, from a project outside the repository.

The checkout is copied (the build writes build/ and *.egg-info beside setup.py), built with
``pip wheel --no-build-isolation`` (no network) and installed with ``pip install --target``.
What imports the package (the configs folder lookup, ``mim search``, mmseg's train script) runs
in a subprocess whose working directory is a user project in a temporary folder and whose
PYTHONPATH is the install target alone, so the repository's own package (the editable install's
finder comes after the path entries) is not what gets imported; the user config is parsed here,
from the installed files.
"""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import mmseg
import pytest
import yaml
from mmengine.config import Config

from tests.helpers.tiny_run import make_data, output

REPO = Path(__file__).resolve().parents[2]
#: What the copy of the checkout leaves out: VCS, environments, build and run outputs.
NOT_BUILT = shutil.ignore_patterns('.git', '.venv*', 'work_dirs', 'data', 'build', 'dist',
                                   '*.egg-info', '__pycache__', '.mim', '.pytest_cache',
                                   '.ruff_cache')
#: mmseg's own training script, as the installed mmsegmentation ships it.
MMSEG_TRAIN = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
#: The user project's way to name the shipped configs folder (docs/configs_from_the_package.md).
BASE = '{{$MMSEG_HRPLUS_CONFIGS:MMSEG_HRPLUS_CONFIGS-is-not-set}}'

USER_CONFIG = f'''
_base_ = ['{BASE}/hrnet/hrnet_w18_cityscapes.py']
model = dict(backbone=dict(init_cfg=None), decode_head=dict(num_classes=8))
optim_wrapper = dict(optimizer=dict(lr=0.02))
'''

USER_TRAIN_CONFIG = f'''
_base_ = ['{BASE}/quickstart/hrnet_w18s_synthetic.py']
data_root = 'synthetic'
model = dict(data_preprocessor=dict(size=(64, 128)), backbone=dict(init_cfg=None))
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
'''


#: One process for what a user runs in a shell: which package is imported, then
#: ``export MMSEG_HRPLUS_CONFIGS=$(python -m mmseg_hrplus.utils.shipped_files)`` and
#: ``python <mmseg>/.mim/tools/train.py <config> ...`` (sys.argv[1:]), unmodified. One import of
#: the stack instead of two: it takes 15-25 s on a loaded 2-core machine.
TRAIN_IN_PROJECT = '''
import contextlib, io, os, runpy, sys
import mmseg_hrplus
print('package', mmseg_hrplus.__file__)
with contextlib.redirect_stdout(io.StringIO()) as printed:
    runpy.run_module('mmseg_hrplus.utils.shipped_files', run_name='__main__')
os.environ['MMSEG_HRPLUS_CONFIGS'] = printed.getvalue().strip()
print('configs', os.environ['MMSEG_HRPLUS_CONFIGS'], flush=True)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def pip(*args: str) -> None:
    """``pip <args>`` offline, without dependencies."""
    proc = subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', *args,
                           '--no-deps', '--no-index'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, output(proc)


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> Dict[str, Path]:
    """The wheel built from a copy of the checkout, installed into a target folder; and an
    empty user project folder."""
    root = tmp_path_factory.mktemp('wheel')
    source, wheels, site = root / 'source', root / 'wheels', root / 'site'
    shutil.copytree(REPO, source, ignore=NOT_BUILT)
    pip('wheel', '--no-build-isolation', '-w', str(wheels), str(source))
    (wheel,) = wheels.glob('mmseg_hrplus-*.whl')
    pip('install', '--target', str(site), str(wheel))
    project = root / 'user_project'
    project.mkdir()
    package = site / 'mmseg_hrplus'
    return dict(source=source, site=site, package=package, configs=package / '.mim' / 'configs',
                project=project)


def run_in_project(installed, args: List[str], **env: str) -> subprocess.CompletedProcess:
    """``python <args>`` in the user project, with the install target as the only PYTHONPATH."""
    env = dict({k: v for k, v in os.environ.items() if k != 'MMSEG_HRPLUS_CONFIGS'},
               PYTHONPATH=str(installed['site']), OMP_NUM_THREADS='1', **env)
    proc = subprocess.run([sys.executable, *args], cwd=installed['project'], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, output(proc)
    return proc


def relative_files(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*')
                  if p.is_file() and '__pycache__' not in p.parts)


def test_the_package_carries_configs_tools_and_model_index_as_copies(installed):
    mim = installed['package'] / '.mim'
    assert not any(p.is_symlink() for p in [mim, *mim.rglob('*')])
    assert (mim / 'model-index.yml').read_bytes() == (REPO / 'model-index.yml').read_bytes()
    assert relative_files(mim / 'configs') == relative_files(REPO / 'configs')
    assert relative_files(mim / 'tools') == relative_files(REPO / 'tools')
    index = yaml.safe_load((mim / 'model-index.yml').read_text())
    for metafile in index['Import']:  # relative to .mim, as mim and mmengine read them
        for model in yaml.safe_load((mim / metafile).read_text())['Models']:
            assert (mim / model['Config']).is_file(), model['Config']


def test_an_editable_build_links_the_checkout_files(installed, tmp_path):
    source = installed['source']
    mim = source / 'mmseg_hrplus' / '.mim'
    assert not mim.exists()  # building the wheel copied into build/, not into the checkout
    # the PEP 660 hook that `pip install -e .` calls
    proc = subprocess.run([sys.executable, '-c', 'from setuptools import build_meta; '
                           f'build_meta.build_editable({str(tmp_path)!r})'],
                          cwd=source, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, output(proc)
    assert {p.name: os.readlink(p) for p in mim.iterdir()} == {
        'configs': '../../configs', 'tools': '../../tools',
        'model-index.yml': '../../model-index.yml'}
    assert (mim / 'configs' / 'hrnet').resolve() == (source / 'configs' / 'hrnet').resolve()


def test_mim_search_lists_every_model(installed):
    proc = run_in_project(installed, ['-m', 'mim', 'search', 'mmseg_hrplus', '--valid-config'])
    listed = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    expected = [model['Name'] for metafile in
                yaml.safe_load((REPO / 'model-index.yml').read_text())['Import']
                for model in yaml.safe_load((REPO / metafile).read_text())['Models']]
    assert {'hrnet_w48_cityscapes', 'deeplabv2_r101-d8_cityscapes-512x1024'} <= set(listed)
    assert sorted(listed) == sorted(expected)


def test_a_user_config_inherits_and_overrides_a_shipped_one(installed, monkeypatch):
    project = installed['project']
    (project / 'user_config.py').write_text(USER_CONFIG)
    (project / 'package_form.py').write_text(
        "_base_ = ['mmseg_hrplus::hrnet/hrnet_w18_cityscapes.py']\n")
    # mmengine 0.10.7 admits only its own list of OpenMMLab scopes before `::`
    with pytest.raises(AssertionError, match='does not support to load mmseg_hrplus config'):
        Config.fromfile(project / 'package_form.py')
    # without the variable, the missing path names it
    monkeypatch.delenv('MMSEG_HRPLUS_CONFIGS', raising=False)
    with pytest.raises(FileNotFoundError,
                       match='MMSEG_HRPLUS_CONFIGS-is-not-set/hrnet/hrnet_w18_cityscapes.py'):
        Config.fromfile(project / 'user_config.py')

    monkeypatch.setenv('MMSEG_HRPLUS_CONFIGS', str(installed['configs']))
    cfg = Config.fromfile(project / 'user_config.py')
    assert f"{installed['configs']}/hrnet/hrnet_w18_cityscapes.py" in cfg.text
    assert f"{installed['configs']}/hrnet_w48_cityscapes.py" in cfg.text  # its own _base_
    # hrnet_w18_cityscapes.py, with the user's overrides
    assert (cfg.model.backbone.arch, cfg.model.backbone.init_cfg) == ('w18', None)
    assert cfg.model.decode_head.in_channels == [18, 36, 72, 144]
    assert (cfg.model.decode_head.channels, cfg.model.decode_head.num_classes) == (270, 8)
    # the user's lr over ../hrnet_w48_cityscapes.py's SGD
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.momentum) == (0.02, 0.9)
    # mmseg::_base_/ entries of the shipped chain
    assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
    assert (tuple(cfg.crop_size), cfg.default_scope) == ((512, 1024), 'mmseg')
    assert cfg.train_cfg.max_iters == 80000
    assert cfg.custom_imports.imports == ['mmseg_hrplus']


def test_mmseg_own_train_script_trains_the_user_config(installed):
    project = installed['project']
    make_data(project / 'synthetic', num_train=2, num_val=1)
    (project / 'train_config.py').write_text(USER_TRAIN_CONFIG)
    proc = run_in_project(installed, ['-c', TRAIN_IN_PROJECT, str(MMSEG_TRAIN),
                                      'train_config.py', '--work-dir', 'run'])
    lines = proc.stdout.splitlines()
    assert lines[0] == f"package {installed['package'] / '__init__.py'}"  # not the checkout's
    assert lines[1] == f"configs {installed['configs']}"
    assert f"`MMSEG_HRPLUS_CONFIGS` with value of {installed['configs']}" in proc.stdout
    run = project / 'run'
    assert (run / 'last_checkpoint').read_text().strip() == str(run / 'iter_1.pth')
    assert (run / 'iter_1.pth').stat().st_size > 1_000_000  # HRNet-W18-small weights
    scalars = [json.loads(line) for line in
               next(run.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    train = [s for s in scalars if 'loss' in s]
    assert [s['iter'] for s in train] == [1]
    assert 0 < train[0]['loss'] < 10  # cross-entropy of 19 classes at init is about ln 19
    assert any('mIoU' in s for s in scalars)  # the validation after the iteration ran too
