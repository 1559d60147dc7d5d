"""mmseg_hrplus/checkpoint: the restricted unpickler reads what checkpoints hold, on both file
formats and both numpy module spellings, and refuses every way a pickle can reach code."""
import collections
import copyreg
import io
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmseg_hrplus.checkpoint import (CheckpointError, RefusedByAllowList, UnsafeCheckpointError,
                                     read_checkpoint)
from mmseg_hrplus.checkpoint import default_allow_list, restricted_pickle
from mmseg_hrplus.checkpoint.allow_list import Builder, history_buffer_getattr

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack


def everything_a_checkpoint_holds():
    """A training checkpoint's kinds of objects: tensors, parameters, BN buffers, optimizer
    state, numpy scalars and arrays, HistoryBuffer, OrderedDict with _metadata, dtypes."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    buffer = HistoryBuffer()
    for value in (1.5, 2.5, 0.5):
        buffer.update(value)
    return {
        'meta': {'iter': 2, 'seed': np.int64(5), 'best_mIoU': np.float64(0.75),
                 'hist': np.arange(6, dtype=np.float32).reshape(2, 3),
                 'dataset_meta': {'classes': ('road', 'car'), 'palette': [[1, 2, 3]]}},
        'state_dict': net.state_dict(),
        'optimizer': optimizer.state_dict(),
        'message_hub': {'log_scalars': {'train/loss': buffer}},
        'parameter': torch.nn.Parameter(torch.ones(2)),
        'half': torch.zeros(3, dtype=torch.float16),
        'dtype': torch.bfloat16, 'device': torch.device('cpu'), 'size': torch.Size([1, 2]),
        'set': {1, 2}, 'frozenset': frozenset({3}), 'bytes': b'\x00\xff', 'complex': 1 + 2j,
        'counter': collections.Counter('aab'), 'slice': slice(1, 4, 2),
    }


@pytest.mark.parametrize('protocol', [2, 4, 5])
@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_reads_what_checkpoints_hold(tmp_path, zip_format, protocol):
    original = everything_a_checkpoint_holds()
    path = tmp_path / 'ckpt.pth'
    torch.save(original, path, _use_new_zipfile_serialization=zip_format,
               pickle_protocol=protocol)
    loaded = read_checkpoint(str(path), map_location='cpu')
    for key, value in original['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value), key
    assert loaded['state_dict']._metadata == original['state_dict']._metadata
    momentum = loaded['optimizer']['state'][0]['momentum_buffer']
    assert torch.equal(momentum, original['optimizer']['state'][0]['momentum_buffer'])
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == pytest.approx(1.5)
    assert buffer.min() == 0.5 and buffer.current() == 0.5
    meta = loaded['meta']
    assert meta['seed'] == 5 and type(meta['seed']) is np.int64
    assert np.array_equal(meta['hist'], original['meta']['hist'])
    assert meta['hist'].dtype == np.float32 and meta['dataset_meta']['classes'] == ('road', 'car')
    assert isinstance(loaded['parameter'], torch.nn.Parameter)
    assert loaded['half'].dtype == torch.float16 and loaded['dtype'] is torch.bfloat16
    for key in ('device', 'size', 'set', 'frozenset', 'bytes', 'complex', 'counter', 'slice'):
        assert loaded[key] == original[key], key


def pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


@pytest.mark.parametrize('spelling', ['numpy.core.multiarray', 'numpy._core.multiarray'])
def test_numpy_objects_under_either_module_spelling(spelling):
    """numpy 2 writes numpy._core, numpy 1 numpy.core: a file from either stack reads on both."""
    data = pickled({'a': np.arange(4.0), 's': np.float64(2.5)})
    for written in (b'numpy.core.multiarray', b'numpy._core.multiarray'):
        data = data.replace(written, spelling.encode())
    loaded = restricted_pickle.loads(data)
    assert np.array_equal(loaded['a'], np.arange(4.0)) and loaded['s'] == 2.5


class RunsCode:
    def __reduce__(self):
        return os.system, ('true',)


class ImportsModule:
    def __reduce__(self):
        return __import__, ('os',)


class ReachesForGetattr:
    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


class EncodesWithOtherCodec:
    def __reduce__(self):
        import codecs
        return codecs.encode, ('abc', 'rot13')


@pytest.mark.parametrize('payload, request_text', [
    (RunsCode(), 'posix.system'),
    (ImportsModule(), 'builtins.__import__'),
    (ReachesForGetattr(), "getattr(HistoryBuffer, '__init__')"),
    (torch.nn.Linear(2, 2), 'torch.nn.modules.linear.Linear'),
    (EncodesWithOtherCodec(), "_codecs.encode(<str>, 'rot13')"),
    (np.dtype('O'), "numpy.dtype('O8') (only numeric and bool dtypes)"),
    (np.array([1, None], dtype=object), 'numpy.dtype(\'O8\') (only numeric and bool dtypes)'),
])
def test_code_reaching_globals_are_refused(payload, request_text):
    with pytest.raises(RefusedByAllowList) as info:
        restricted_pickle.loads(pickled({'meta': payload}))
    assert info.value.request == request_text and info.value.exists


def op(code: bytes, text: str = '') -> bytes:
    return code + (text.encode() + b'\n' if text else b'')


def test_state_cannot_be_set_on_a_class():
    """BUILD on HistoryBuffer itself (not an instance) would rewrite the class for the process."""
    data = (pickle.PROTO + b'\x02' + op(pickle.GLOBAL, 'mmengine.logging.history_buffer\n'
                                           'HistoryBuffer')
            + pickle.EMPTY_DICT + pickle.SHORT_BINUNICODE + b'\x03min' + pickle.NONE
            + pickle.SETITEM + pickle.BUILD + pickle.STOP)
    with pytest.raises(RefusedByAllowList, match='setting the state of'):
        restricted_pickle.loads(data)


def test_dunder_state_is_refused_on_containers():
    data = (pickle.PROTO + b'\x02' + op(pickle.GLOBAL, 'collections\nOrderedDict')
            + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.EMPTY_DICT + pickle.SHORT_BINUNICODE
            + b'\x09__class__' + pickle.NONE + pickle.SETITEM + pickle.BUILD + pickle.STOP)
    with pytest.raises(RefusedByAllowList, match='setting the state of'):
        restricted_pickle.loads(data)


def test_call_of_a_returned_function_is_refused():
    """getattr(HistoryBuffer, 'mean') is allowed as a value, not as something to call."""
    data = (pickle.PROTO + b'\x02' + op(pickle.GLOBAL, 'builtins\ngetattr')
            + op(pickle.GLOBAL, 'mmengine.logging.history_buffer\nHistoryBuffer')
            + pickle.SHORT_BINUNICODE + b'\x04mean' + pickle.TUPLE2 + pickle.REDUCE
            + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.STOP)
    with pytest.raises(RefusedByAllowList, match='a call of .*HistoryBuffer.mean'):
        restricted_pickle.loads(data)


def test_new_instance_of_a_returned_object_is_refused():
    data = (pickle.PROTO + b'\x02' + op(pickle.GLOBAL, 'builtins\ngetattr')
            + op(pickle.GLOBAL, 'mmengine.logging.history_buffer\nHistoryBuffer')
            + pickle.SHORT_BINUNICODE + b'\x03min' + pickle.TUPLE2 + pickle.REDUCE
            + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.STOP)
    with pytest.raises(RefusedByAllowList, match='a new .*HistoryBuffer.min'):
        restricted_pickle.loads(data)


def test_copyreg_extensions_are_refused():
    copyreg.add_extension('posix', 'system', 241)
    try:
        with pytest.raises(RefusedByAllowList, match='copyreg extension code 241') as info:
            restricted_pickle.loads(pickle.PROTO + b'\x02' + pickle.EXT1 + b'\xf1' + pickle.STOP)
        assert info.value.exists
    finally:
        copyreg.remove_extension('posix', 'system', 241)
    with pytest.raises(RefusedByAllowList) as info:  # unregistered: damage, not a request
        restricted_pickle.loads(pickle.PROTO + b'\x02' + pickle.EXT1 + b'\x07' + pickle.STOP)
    assert not info.value.exists


def test_guards_themselves():
    buffer = default_allow_list().find('mmengine.logging.history_buffer', 'HistoryBuffer')
    assert isinstance(buffer, Builder) and buffer.call is None  # made by NEWOBJ only
    assert history_buffer_getattr(buffer, 'max') is vars(HistoryBuffer)['max']
    with pytest.raises(RefusedByAllowList):
        history_buffer_getattr(np, 'os')
    with pytest.raises(RefusedByAllowList):
        history_buffer_getattr(HistoryBuffer, 'max')  # the real class is never on the stack
    encode = default_allow_list().find('_codecs', 'encode')
    assert encode.call(_NoBudget(), '\xff', 'latin1') == b'\xff'
    with pytest.raises(RefusedByAllowList):
        encode.call(_NoBudget(), b'x', 'latin1')
    reconstruct = default_allow_list().find('numpy.core.multiarray', '_reconstruct')
    assert reconstruct.call(_NoBudget(), np.ndarray, (0,), b'b').shape == (0,)
    with pytest.raises(RefusedByAllowList, match='numpy _reconstruct of'):
        reconstruct.call(_NoBudget(), np.matrix, (0,), b'b')  # a subclass runs its own code


class _NoBudget:
    """What builders see of the unpickler: a budget and the objects awaiting their state."""

    def charge(self, nbytes):
        pass

    def expect_state(self, obj, handler):
        pass


def test_unknown_global_reads_as_damage_not_attack(tmp_path):
    """A file cut inside a global's name asks for something that exists nowhere: damaged."""
    path = tmp_path / 'legacy.pth'
    torch.save({'w': torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[:data.index(b'_rebuild') + 6])
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(str(path))
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "unknown global 'torch._utils._rebu'" in str(info.value)


def test_file_objects_are_read_too():
    buffer = io.BytesIO()
    torch.save({'w': torch.arange(3)}, buffer)
    buffer.seek(0)
    assert torch.equal(read_checkpoint(buffer)['w'], torch.arange(3))


def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / 'scripted.pt'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsafeCheckpointError, match='a TorchScript archive, which holds code'):
        read_checkpoint(str(path))


def test_html_page_is_named_as_such(tmp_path):
    path = tmp_path / 'page.pth'
    path.write_bytes(b'\n<!DOCTYPE html>\n<html><body>Not Found</body></html>\n')
    with pytest.raises(CheckpointError, match=r'page.pth \(\d+ bytes\): it is an HTML page'):
        read_checkpoint(str(path))
