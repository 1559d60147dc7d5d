"""mmseg_hrplus/checkpoint: a checkpoint that cannot be read gives an error naming the file, on
every mmengine load path; mismatched keys are reported, and refused when strict."""
import os
import pickle
import random
import re
import subprocess

import pytest
import torch
import torch.nn as nn
from tests.helpers.crafted_pickles import RunsCode
from mmengine.model import BaseModel, BaseModule
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from mmseg_hrplus.checkpoint import (CheckpointError, CheckpointMismatchError,
                                     UnsafeCheckpointError, loaders_are_ours, read_checkpoint)

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack


class Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.head(self.body(inputs))


class PretrainedNet(BaseModule):
    def __init__(self, checkpoint):
        super().__init__(init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
        self.body = nn.Linear(3, 4)


torch.manual_seed(1)
GOOD_WEIGHTS = Net().state_dict()


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """One good checkpoint and every kind of damaged one, keyed by kind."""
    root = tmp_path_factory.mktemp('ckpt')
    good = root / 'good.pth'
    torch.save({'state_dict': GOOD_WEIGHTS, 'meta': {'iter': 2}}, good)
    data = good.read_bytes()
    legacy = root / 'legacy.pth'
    torch.save({'state_dict': Net().state_dict()}, legacy, _use_new_zipfile_serialization=False)
    corrupted = bytearray(data)
    start = data.index(b'data.pkl') + 60  # inside the pickle member of the zip
    corrupted[start:start + 24] = bytes(24)
    made = {
        'good': data,
        'truncated': data[:len(data) // 2],
        'empty': b'',
        'random bytes': random.Random(0).randbytes(4096),
        'text': b'not a checkpoint\n' * 20,
        'corrupted pickle': bytes(corrupted),
        # cut inside a global's name: the torn name must not read as a request to run code
        'truncated legacy format': legacy.read_bytes()[:legacy.read_bytes().index(b'_rebuild') + 6],
        'truncated legacy data': legacy.read_bytes()[:-20],
    }
    paths = {}
    for kind, content in made.items():
        paths[kind] = root / (kind.replace(' ', '_') + '.pth')
        paths[kind].write_bytes(content)
    return paths


def test_every_path_goes_through_our_loaders():
    assert loaders_are_ours()
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth').__module__ == \
        'mmseg_hrplus.checkpoint.download'


def runner_load_from(path):
    runner = Runner(model=Net(), work_dir=str(path.parent / 'runner'),
                    experiment_name=f'load_from_{path.stem}_{os.getpid()}')
    runner.load_checkpoint(str(path))
    return runner.model.state_dict()


def load_into_net(path):
    net = Net()
    load_checkpoint(net, str(path), map_location='cpu')
    return net.state_dict()


def load_pretrained(path):
    net = PretrainedNet(str(path))
    net.init_weights()
    return net.state_dict()


def runner_resume(path):
    runner = Runner(model=Net(), work_dir=str(path.parent / 'runner'),
                    experiment_name=f'resume_{path.stem}_{os.getpid()}')
    runner.resume(str(path))


LOAD_PATHS = {
    '_load_checkpoint': lambda p: _load_checkpoint(str(p), map_location='cpu')['state_dict'],
    'load_checkpoint': load_into_net,
    'CheckpointLoader (converters)': lambda p: CheckpointLoader.load_checkpoint(str(p))[
        'state_dict'],
    'Runner load_from': runner_load_from,
    'Runner resume': runner_resume,
    'init_cfg Pretrained': load_pretrained,
}
DAMAGED = {
    'truncated': r'\(\d+ bytes\): truncated, corrupted or not a PyTorch checkpoint \(no zip end '
                 r'record at the end of the file: truncated',
    'empty': r': the file is empty \(0 bytes\)',
    'random bytes': r'\(4096 bytes\): truncated, corrupted or not a PyTorch checkpoint',
    'text': r'\(340 bytes\): truncated, corrupted or not a PyTorch checkpoint',
    'corrupted pickle': r'truncated, corrupted or not a PyTorch checkpoint \((\w+Error: |'
                        r'unpickling stopped at an unknown global )',
    'truncated legacy format': r'truncated, corrupted or not a PyTorch checkpoint \(unpickling '
                               r"stopped at an unknown global 'torch\._utils\._rebu'\)",
    'truncated legacy data': r'truncated, corrupted or not a PyTorch checkpoint \(',
}


@pytest.mark.parametrize('load', list(LOAD_PATHS.values()), ids=list(LOAD_PATHS))
@pytest.mark.parametrize('kind', list(DAMAGED))
def test_damaged_checkpoint_error_names_the_file(files, kind, load):
    path = files[kind]
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f'cannot read checkpoint {path}'), message
    assert re.search(DAMAGED[kind], message), message
    assert '\n' not in message and 'weights_only' not in message  # one line, no advice to unsafe
    assert not isinstance(info.value, pickle.UnpicklingError)  # damaged, not a refusal
    assert info.value.__context__ is None and info.value.__cause__ is None  # no raw trace


@pytest.mark.parametrize('name', [name for name in LOAD_PATHS if name != 'Runner resume'])
def test_good_checkpoint_loads_on_every_path(files, name):
    # (resuming needs a whole training checkpoint: tests/tools/test_resume_exact.py)
    loaded = LOAD_PATHS[name](files['good'])
    assert {'body.weight', 'body.bias'} <= set(loaded)
    for key, value in loaded.items():
        assert torch.equal(value, GOOD_WEIGHTS[key]), key


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'checkpoint not found: {tmp_path}/nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_other_failures_keep_torchs_words_and_add_the_file(files):
    with pytest.raises(CheckpointError, match=f'cannot read checkpoint {files["good"]}: '
                       r'RuntimeError: Attempting to deserialize object on a CUDA device'):
        read_checkpoint(str(files['good']), map_location='cuda')


class Spawns:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return subprocess.Popen, (['touch', str(self.marker)],)


class Evaluates:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"__import__('os').system('touch {self.marker}')",)


@pytest.mark.parametrize('payload, name, zip_format', [
    (RunsCode, 'posix.system', True), (RunsCode, 'posix.system', False),
    (Spawns, 'subprocess.Popen', True), (Evaluates, 'builtins.eval', True)])
def test_code_running_checkpoint_is_refused_by_name(tmp_path, payload, name, zip_format):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': payload(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(str(path), map_location='cpu')
    assert str(info.value).startswith(
        f'refused checkpoint {path}: the file asks for `{name}`, which is outside the '
        'allow-list; nothing was executed')
    assert isinstance(info.value, pickle.UnpicklingError)  # what torch.load itself raises
    assert not marker.exists()


@pytest.fixture
def mismatched(tmp_path):
    """A checkpoint of Net without head.weight, with an extra key and a reshaped head.bias."""
    state = Net().state_dict()
    del state['head.weight']
    state['extra.weight'] = torch.zeros(1)
    state['head.bias'] = torch.zeros(5)
    path = tmp_path / 'mismatched.pth'
    torch.save({'state_dict': state}, path)
    return path, state


def test_mismatched_keys_are_reported(mismatched, capsys):
    path, state = mismatched
    model = Net()
    load_checkpoint(model, str(path), map_location='cpu', strict=False)
    log = capsys.readouterr().out
    assert 'unexpected key in source state_dict: extra.weight' in log
    assert 'missing keys in source state_dict: head.weight' in log
    assert 'size mismatch for head.bias: copying a param with shape torch.Size([5])' in log
    assert torch.equal(model.body.weight, state['body.weight'])  # what matches is loaded


def test_mismatched_keys_through_runner_load_from_are_reported(mismatched, capsys):
    path, _ = mismatched
    runner_load_from(path)
    log = capsys.readouterr().out
    assert 'unexpected key in source state_dict: extra.weight' in log
    assert 'missing keys in source state_dict: head.weight' in log


def test_mismatched_keys_are_refused_when_strict(mismatched):
    path, _ = mismatched
    model = Net()
    before = model.body.weight.detach().clone()
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, str(path), map_location='cpu', strict=True)
    assert str(info.value) == (
        f'checkpoint {path} does not fit Net (strict loading): 1 key missing from the file: '
        'head.weight; 1 key not in the model: extra.weight; 1 key of another shape: head.bias '
        '(file [5], model [2]). Is it the checkpoint of another model, or does it need a '
        'converter?')
    assert isinstance(info.value, RuntimeError)  # what mmengine raises
    assert model.body.weight.shape == before.shape


def test_strict_mismatch_through_runner_load_from_names_the_file(mismatched):
    path, _ = mismatched
    runner = Runner(model=Net(), work_dir=str(path.parent / 'runner'),
                    experiment_name=f'strict_{os.getpid()}')
    with pytest.raises(CheckpointMismatchError, match=f'^checkpoint {path} does not fit Net'):
        runner.load_checkpoint(str(path), strict=True)


class ReachesForGetattr:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_beyond_history_buffer_statistics_is_refused(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'meta': ReachesForGetattr()}, path)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(
            f"refused checkpoint {path}: the file asks for `getattr(HistoryBuffer, '__init__')`"
            ', which is outside the allow-list; nothing was executed')):
        _load_checkpoint(str(path), map_location='cpu')


def test_any_random_file_is_reported_as_damaged(tmp_path):
    """Garbage is damage, whatever it looks like: 200 seeded files of random bytes, and 200 that
    start like a pickle so that the unpickler itself meets the garbage (and fails in many ways:
    UnpicklingError, IndexError from popping an empty stack, KeyError, UnicodeDecodeError...)."""
    path = tmp_path / 'garbage.pth'
    kinds = set()
    for seed in range(400):
        data = random.Random(seed).randbytes(4096)
        if seed >= 200:
            data = b'\x80\x02' + data[2:]
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(str(path))
        assert re.search(r'\(4096 bytes\): truncated, corrupted or not a PyTorch checkpoint '
                         r'\(.+\)$', str(info.value)), (seed, str(info.value))
        assert not isinstance(info.value, UnsafeCheckpointError), (seed, str(info.value))
        kinds.add(str(info.value).split(' checkpoint (')[-1].split(':')[0])
    assert 'no zip archive, no legacy torch pickle, no safetensors header)' in kinds
    assert {'IndexError', 'UnpicklingError'} <= kinds, kinds  # the unpickler's own failures
