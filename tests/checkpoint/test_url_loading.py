"""Checkpoints by URL, served from 127.0.0.1: every mmengine scheme that downloads reads with
the safe reader. A crafted file is refused (nothing runs) and removed from the cache, an HTML
page or a 404 is named as such, and a good file loads with its weights, before and after."""
import itertools
import json
import os

import pytest
import torch
import torch.nn as nn
from tests.helpers.crafted_pickles import RunsCode
from mmengine.model import BaseModel, BaseModule
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint
from tests.helpers.served_files import serve_directory

from mmseg_hrplus.checkpoint import (CheckpointDownloadError, CheckpointError,
                                     UnsafeCheckpointError, cached_path_for, unsafe_schemes)

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.body(inputs)


class PretrainedNet(BaseModule):
    def __init__(self, checkpoint):
        super().__init__(init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
        self.body = nn.Linear(3, 4)


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp('served')
    weights = Net().state_dict()
    torch.save({'state_dict': weights, 'meta': {'iter': 3}}, root / 'good.pth')
    marker = root / 'marker'
    torch.save({'state_dict': {}, 'meta': RunsCode(marker)}, root / 'evil.pth')
    (root / 'page.pth').write_text('<!DOCTYPE html>\n<html><body>Sign in</body></html>\n')
    with serve_directory(root) as base:
        yield dict(base=base, weights=weights, marker=marker)


@pytest.fixture(autouse=True)
def hub_dir(tmp_path):
    """A fresh torch hub cache per test (mmengine's http loader caches there too)."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub'
    torch.hub.set_dir(before)


def test_every_registered_scheme_is_safe():
    assert unsafe_schemes() == {}
    assert set(CheckpointLoader._schemes) >= {'', 'http://', 'https://', 'open-mmlab://',
                                              'openmmlab://', 'mmcls://', 'torchvision://'}


def assert_good(server, checkpoint):
    state = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    for key, value in server['weights'].items():
        assert torch.equal(state[key], value), key


def load_into_net(url):
    net = Net()
    load_checkpoint(net, url, map_location='cpu', strict=True)
    return {'state_dict': net.state_dict()}


def load_pretrained(url):
    net = PretrainedNet(url)
    net.init_weights()
    return {'state_dict': net.state_dict()}


RUNNER_NUMBERS = itertools.count()  # mmengine warns when two Runners share a name


def runner_load_from(url):
    runner = Runner(model=Net(), work_dir=os.path.join(torch.hub.get_dir(), 'runner'),
                    experiment_name=f'url_{os.getpid()}_{next(RUNNER_NUMBERS)}')
    runner.load_checkpoint(url)
    return {'state_dict': runner.model.state_dict()}


URL_PATHS = {
    'CheckpointLoader': lambda url: CheckpointLoader.load_checkpoint(url, map_location='cpu'),
    '_load_checkpoint': lambda url: _load_checkpoint(url, map_location='cpu'),
    'load_checkpoint': load_into_net,
    'init_cfg Pretrained': load_pretrained,
    'Runner load_from': runner_load_from,
}


@pytest.mark.parametrize('load', list(URL_PATHS.values()), ids=list(URL_PATHS))
def test_good_url_loads_with_its_weights(server, load, hub_dir):
    url = f'{server["base"]}/good.pth'
    assert_good(server, load(url))
    assert os.path.isfile(cached_path_for(url))  # kept in the cache as mmengine would


@pytest.mark.parametrize('load', list(URL_PATHS.values()), ids=list(URL_PATHS))
def test_crafted_url_is_refused_and_not_cached(server, load):
    url = f'{server["base"]}/evil.pth'
    cached = cached_path_for(url)
    with pytest.raises(UnsafeCheckpointError) as info:
        load(url)
    message = str(info.value)
    assert message.startswith(f'refused checkpoint {url} (downloaded): the file asks for '
                              '`posix.system`, which is outside the allow-list; nothing was '
                              'executed'), message
    assert message.endswith('nothing was cached') and '\n' not in message
    assert not server['marker'].exists()
    assert not os.path.exists(cached)
    # nothing lost: a good load afterwards works
    assert_good(server, load(f'{server["base"]}/good.pth'))


def test_html_page_is_named_and_not_cached(server):
    url = f'{server["base"]}/page.pth'
    with pytest.raises(CheckpointError, match=rf'cannot read checkpoint {url} \(downloaded\) '
                       r'\(\d+ bytes\): it is an HTML page, not a PyTorch '
                       r'checkpoint.*nothing was cached$'):
        _load_checkpoint(url, map_location='cpu')
    assert not os.path.exists(cached_path_for(url))


def test_404_is_named(server):
    url = f'{server["base"]}/missing.pth'
    with pytest.raises(CheckpointDownloadError,
                       match=rf'^cannot download checkpoint {url}: HTTP 404 '):
        _load_checkpoint(url, map_location='cpu')
    assert not os.path.exists(cached_path_for(url))


def test_unreachable_server_is_named(server):
    with pytest.raises(CheckpointDownloadError, match=r'^cannot download checkpoint '
                       r'http://127\.0\.0\.1:9/x\.pth: .*refused'):
        _load_checkpoint('http://127.0.0.1:9/x.pth', map_location='cpu')


@pytest.fixture
def openmmlab_names(server, tmp_path, monkeypatch):
    """open-mmlab:// names resolved through mmengine's user list in MMENGINE_HOME."""
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    (home / 'open_mmlab.json').write_text(json.dumps({
        'test/good': f'{server["base"]}/good.pth', 'test/evil': f'{server["base"]}/evil.pth'}))
    monkeypatch.setenv('MMENGINE_HOME', str(home))


@pytest.mark.parametrize('prefix', ['open-mmlab://', 'openmmlab://'])
def test_openmmlab_names_go_through_the_safe_reader(server, openmmlab_names, prefix):
    assert_good(server, _load_checkpoint(f'{prefix}test/good', map_location='cpu'))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth .*`posix.system`'):
        _load_checkpoint(f'{prefix}test/evil', map_location='cpu')
    assert not server['marker'].exists()


@pytest.mark.parametrize('prefix, lister', [
    ('torchvision://', 'get_torchvision_models'), ('modelzoo://', 'get_torchvision_models'),
    ('mmcls://', 'get_mmcls_models')])
def test_named_model_schemes_go_through_the_safe_reader(server, monkeypatch, prefix, lister):
    urls = {'good': f'{server["base"]}/good.pth', 'evil': f'{server["base"]}/evil.pth'}
    monkeypatch.setattr(mmengine_checkpoint, lister, lambda: urls)
    loaded = _load_checkpoint(f'{prefix}good', map_location='cpu')
    if prefix == 'mmcls://':  # mmengine keeps only 'backbone.' keys for mmcls
        assert loaded == {'state_dict': {}}
    else:
        assert_good(server, loaded)
    with pytest.raises(UnsafeCheckpointError, match='`posix.system`'):
        _load_checkpoint(f'{prefix}evil', map_location='cpu')
    assert not server['marker'].exists()


def test_open_mmlab_names_resolve_like_mmengine():
    """The names mmseg's HRNet configs use resolve to the same URL through our loader."""
    from mmseg_hrplus.checkpoint.loaders import resolve_openmmlab
    urls = mmengine_checkpoint.get_external_models()
    for name in ('msra/hrnetv2_w18', 'msra/hrnetv2_w18_small', 'msra/hrnetv2_w48'):
        assert resolve_openmmlab(f'open-mmlab://{name}') == urls[name]
        assert urls[name].startswith('https://')


def test_torchvision_names_resolve_without_torchvision(monkeypatch):
    """mmengine's table imports torchvision, which nothing installs; the names come from
    mmengine's copy of torchvision 0.12's table then (what our DeepLabv2 configs rely on)."""
    from mmseg_hrplus.checkpoint.loaders import resolve_torchvision

    def no_torchvision():
        raise ModuleNotFoundError("No module named 'torchvision'")

    monkeypatch.setattr(mmengine_checkpoint, 'get_torchvision_models', no_torchvision)
    assert resolve_torchvision('torchvision://resnet101') == \
        'https://download.pytorch.org/models/resnet101-63fe2227.pth'
    assert resolve_torchvision('modelzoo://resnet50') == \
        'https://download.pytorch.org/models/resnet50-0676ba61.pth'
    with pytest.raises(KeyError, match="torchvision://resnet7: unknown model name 'resnet7'"):
        resolve_torchvision('torchvision://resnet7')


# -- the download cache: verified before it is kept, keyed by the whole URL

@pytest.fixture(scope='module')
def hashed(tmp_path_factory):
    """The good file served under its true SHA-256 prefix and under a wrong one."""
    import hashlib
    root = tmp_path_factory.mktemp('hashed')
    weights = Net().state_dict()
    torch.save({'state_dict': weights}, root / 'plain.pth')
    digest = hashlib.sha256((root / 'plain.pth').read_bytes()).hexdigest()
    (root / f'model-{digest[:8]}.pth').write_bytes((root / 'plain.pth').read_bytes())
    wrong = 'deadbeef' if not digest.startswith('deadbeef') else 'beefdead'
    (root / f'model-{wrong}.pth').write_bytes((root / 'plain.pth').read_bytes())
    with serve_directory(root) as base:
        yield dict(base=base, weights=weights, right=f'{base}/model-{digest[:8]}.pth',
                   wrong=f'{base}/model-{wrong}.pth', digest=digest)


def test_hash_in_the_file_name_is_checked_before_caching(hashed):
    assert_good(hashed, _load_checkpoint(hashed['right'], map_location='cpu'))
    assert os.path.isfile(cached_path_for(hashed['right']))
    with pytest.raises(CheckpointDownloadError, match=(
            rf'^cannot use checkpoint {hashed["wrong"]}: its SHA-256 begins '
            rf'{hashed["digest"][:8]}, the file name says [0-9a-f]{{8}} .*nothing was cached$')):
        _load_checkpoint(hashed['wrong'], map_location='cpu')
    assert not os.path.exists(cached_path_for(hashed['wrong']))
    assert os.listdir(os.path.dirname(cached_path_for(hashed['wrong']))) == []  # no leftovers


def test_a_file_from_one_url_never_answers_for_another(tmp_path):
    """Two servers, one file name, other weights: each URL gets its own file."""
    first, second = tmp_path / 'a', tmp_path / 'b'
    first.mkdir()
    second.mkdir()
    torch.save({'w': torch.zeros(2)}, first / 'weights.pth')
    torch.save({'w': torch.ones(2)}, second / 'weights.pth')
    with serve_directory(first) as base_a, serve_directory(second) as base_b:
        url_a, url_b = f'{base_a}/weights.pth', f'{base_b}/weights.pth'
        assert torch.equal(_load_checkpoint(url_a)['w'], torch.zeros(2))
        assert torch.equal(_load_checkpoint(url_b)['w'], torch.ones(2))
        assert cached_path_for(url_a) != cached_path_for(url_b)
        assert torch.equal(_load_checkpoint(url_a)['w'], torch.zeros(2))  # from the cache


def test_out_of_memory_while_verifying_names_the_url_and_caches_nothing(server, monkeypatch):
    from mmseg_hrplus.checkpoint import reader

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(reader, '_parse', exhausted)
    url = f'{server["base"]}/good.pth'
    with pytest.raises(CheckpointError, match=rf'^cannot read checkpoint {url} \(downloaded\) '
                       r'\(\d+ bytes\): out of memory while reading it; nothing was cached$'):
        _load_checkpoint(url, map_location='cpu')
    assert not os.path.exists(cached_path_for(url))


def test_a_process_killed_while_verifying_leaves_nothing_cached(server, hub_dir):
    """The process dies between download and verification (os._exit: no cleanup runs): the
    cache name stays empty, and the next download removes the dead process's partial file."""
    import subprocess
    import sys
    url = f'{server["base"]}/good.pth'
    script = (
        'import os, torch\n'
        f'torch.hub.set_dir({str(hub_dir)!r})\n'
        'from mmseg_hrplus.checkpoint import download\n'
        'download.read_checkpoint = lambda *args, **kwargs: os._exit(3)\n'
        f'download.load_checkpoint_from_url({url!r})\n')
    run = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 3, run.stderr[-2000:]
    cached = cached_path_for(url)
    assert not os.path.exists(cached)
    assert [name for name in os.listdir(os.path.dirname(cached))
            if name.startswith('.partial-')], 'the dead process left its partial file'
    assert_good(server, _load_checkpoint(url, map_location='cpu'))
    assert os.listdir(os.path.dirname(cached)) == ['good.pth']
