"""The attack corpus: crafted checkpoint files, one per way around the reader we know of.

Each :class:`Case` makes a file's bytes and says what the reader must do with it:

* ``refused``: :class:`UnsafeCheckpointError` whose message matches ``reason``;
* ``damaged``: a :class:`CheckpointError` that is not a refusal, matching ``reason``;
* ``loads``: the file loads (a legitimate file, or one whose trick is harmless here).

Classes (issue 20): TorchScript and other zip tricks, tar (torch's oldest format), memory
corruption through allowed objects, denial of service, names whose lookup would import, and
legitimate files that used to be refused. ``Context`` gives each case the paths it aims at:
``victim`` (a 0600 file outside the corpus folder that a tar hard link targets) and ``marker``
(a file that code from the pickle would create).
"""
import io
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Tuple

import numpy as np
import torch
from tests.helpers.pickle_asm import (P, build, call, dct, empty_hooks, glob, integer,
                                      legacy_file, lst, program, raw, storage, tensor, text,
                                      torch_zip, tup, zip_bytes, zip_record)


@dataclass
class Context:
    victim: Path
    marker: Path


@dataclass
class Case:
    name: str
    make: Callable[[Context], bytes]
    expect: str  # 'refused', 'damaged' or 'loads'
    reason: str = ''


FLOATS4 = np.arange(4, dtype=np.float32).tobytes()


def saved(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def weights_pickle(*extra: bytes) -> bytes:
    """``{'w': tensor over storage 0 (4 floats), ...extra}``."""
    return program(P.EMPTY_DICT + P.MARK + text('w') + tensor(storage('0', 4), 0, (4,), (1,))
                   + b''.join(extra) + P.SETITEMS)


def with_weights(payload: bytes) -> bytes:
    """A valid archive whose pickle also holds ``'x': payload``."""
    return torch_zip(weights_pickle(text('x') + payload), {'0': FLOATS4})


def records_of(archive: bytes) -> List[dict]:
    import zipfile
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return [zip_record(info.filename, z.read(info.filename)) for info in z.infolist()]


def torchscript() -> bytes:
    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.ones(2)

        def forward(self, x):
            return x * self.weight

        @torch.jit.export
        def __getstate__(self):
            return (self.weight, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[torch.Tensor, bool]):
            self.weight = state[0] + 1
            self.training = state[1]

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Scripted()), buffer)
    return buffer.getvalue()


def torchscript_bad_extra(ctx) -> bytes:
    """The bypass of the old check: one record whose extra field Python's zipfile refuses
    (declared longer than it is) while torch's reader ignores it."""
    records = [dict(r, data=r['data']) for r in records_of(torchscript())]
    records[-1]['central_extra'] = struct.pack('<HH', 0xCAFE, 40) + b'xx'
    return zip_bytes(records)


def tar_with(member: tarfile.TarInfo, data: bytes = b'') -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name in ('sys_info', 'pickle', 'tensors'):
            info = tarfile.TarInfo(name)
            payload = P.PROTO + b'\x02' + P.EMPTY_DICT + P.STOP
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        tar.addfile(member, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def tar_hardlink(ctx) -> bytes:
    member = tarfile.TarInfo('storages')
    member.type, member.linkname, member.mode, member.uid = tarfile.LNKTYPE, str(ctx.victim), \
        0o777, 1234
    return tar_with(member)


def tar_fifo(ctx) -> bytes:
    member = tarfile.TarInfo('storages')
    member.type = tarfile.FIFOTYPE
    return tar_with(member)


def tar_symlink(ctx) -> bytes:
    member = tarfile.TarInfo('storages')
    member.type, member.linkname = tarfile.SYMTYPE, str(ctx.victim)
    return tar_with(member)


def system_call(ctx, module='posix') -> bytes:
    return with_weights(call(glob(module, 'system'), text(f'touch {ctx.marker}')))


def parameter_with_state(state: bytes) -> bytes:
    return with_weights(call(glob('torch._utils', '_rebuild_parameter_with_state'),
                             tensor(storage('0', 4), 0, (4,), (1,)), P.NEWFALSE, empty_hooks(),
                             state))


def numpy_dtype(spec: str) -> bytes:
    return call(glob('numpy', 'dtype'), text(spec), P.NEWFALSE, P.NEWTRUE)


def dtype_state(spec: str, state: bytes) -> bytes:
    return build(numpy_dtype(spec), state)


def standard_dtype_state(order='<', elsize=-1, alignment=-1, flags=0) -> bytes:
    return tup(integer(3), text(order), P.NONE, P.NONE, P.NONE, integer(elsize),
               integer(alignment), integer(flags))


def array(shape, spec: str, data: bytes) -> bytes:
    empty = call(glob('numpy.core.multiarray', '_reconstruct'), glob('numpy', 'ndarray'),
                 tup(integer(0)), raw(b'b'))
    state = tup(integer(1), tup(*map(integer, shape)),
                dtype_state(spec, standard_dtype_state()), P.NEWFALSE, raw(data))
    return build(empty, state)


def history_buffer(state: bytes) -> bytes:
    return build(glob('mmengine.logging.history_buffer', 'HistoryBuffer') + P.EMPTY_TUPLE
                 + P.NEWOBJ, state)


def legacy_weights(numels=(4,), counts=(4,), data=(FLOATS4,), keys=('k',),
                   declared=4) -> bytes:
    main = program(dct(w=tensor(storage('k', declared, legacy=True), 0, (declared,), (1,))))
    return legacy_file(main, list(keys), list(data), list(counts))


def memo_amplification(ctx) -> bytes:
    """One 1 MB bytes object, memoised, then 300 bytearrays of it: 300 MB from a 1 MB file."""
    big = raw(b'\0' * (1 << 20)) + P.BINPUT + b'\x01'
    copies = b''.join(call(glob('builtins', 'bytearray'), P.BINGET + b'\x01') + P.POP
                      for _ in range(300))
    return with_weights(big + P.POP + copies + P.NONE)


def set_amplification(ctx) -> bytes:
    items = lst(*[integer(i) for i in range(20000)]) + P.BINPUT + b'\x02'
    copies = b''.join(call(glob('builtins', 'frozenset'), P.BINGET + b'\x02') + P.POP
                      for _ in range(5000))
    return with_weights(items + P.POP + copies + P.NONE)


def deep_nesting(ctx) -> bytes:
    depth = 100_000
    return with_weights(P.EMPTY_LIST * depth + P.APPEND * (depth - 1))


def deflated_storage(ctx) -> bytes:
    """200 MB of zeros compressed to about 200 KB: a zip bomb torch's reader would inflate."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    numel = 50 << 20
    data = compressor.compress(bytes(4 * numel)) + compressor.flush()
    pkl = program(dct(w=tensor(storage('0', numel), 0, (numel,), (1,))))
    records = [zip_record('archive/data.pkl', pkl), zip_record('archive/data/0', data, method=8),
               zip_record('archive/version', b'3\n')]
    return zip_bytes(records)


def zip_variant(**changes) -> Callable[[Context], bytes]:
    def make(ctx) -> bytes:
        records = records_of(torch_zip(weights_pickle(), {'0': FLOATS4}))
        for index, record in enumerate(records):
            if record['name'] == changes.get('record', 'archive/data/0'):
                records[index] = dict(record, **changes.get('fields', {}))
        records += changes.get('add', [])
        return zip_bytes(records, comment=changes.get('comment', b''),
                         overlap_last=changes.get('overlap', False))
    return make


def legit_checkpoint(ctx) -> bytes:
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.0)
    return saved({'state_dict': {'w': torch.ones(2)}, 'meta': {'seed': np.int64(3)},
                  'message_hub': {'log_scalars': {'loss': buffer}}})


def safetensors_file(ctx, offsets=None) -> bytes:
    import json
    data = FLOATS4
    header = {'w': {'dtype': 'F32', 'shape': [4], 'data_offsets': offsets or [0, 16]}}
    encoded = json.dumps(header).encode()
    return struct.pack('<Q', len(encoded)) + encoded + data


CASES: List[Case] = [
    # -- 1. TorchScript and other zip tricks
    Case('torchscript', lambda ctx: torchscript(), 'refused', 'a TorchScript archive'),
    Case('torchscript_bad_extra_field', torchscript_bad_extra, 'damaged',
         'malformed zip extra field'),
    Case('torchscript_renamed_code', zip_variant(add=[zip_record(
        'archive/code/__torch__.py', b'def f(): pass\n')]), 'refused', 'TorchScript'),
    Case('zip_constants_pkl', zip_variant(add=[zip_record('archive/constants.pkl', b'')]),
         'refused', 'TorchScript'),
    Case('zip_unknown_record', zip_variant(add=[zip_record('archive/notes.txt', b'hi')]),
         'refused', "the record 'notes.txt'"),
    Case('zip_two_folders', zip_variant(add=[zip_record('other/data.pkl', b'')]), 'damaged',
         'one folder'),
    Case('zip_duplicate_data_pkl', zip_variant(add=[zip_record(
        'archive/data.pkl', program(call(glob('posix', 'system'), text('true'))))]), 'damaged',
        'appears twice'),
    Case('zip_deflated_storage_bomb', deflated_storage, 'refused', 'compressed'),
    Case('zip_encrypted_record', zip_variant(fields=dict(flags=1)), 'refused', 'encrypted'),
    Case('zip_overlapping_records', zip_variant(add=[zip_record('archive/data/1', FLOATS4)],
                                                overlap=True), 'damaged', 'disagrees|overlap'),
    Case('zip_comment_hides_data', zip_variant(comment=b'PK\x05\x06' + bytes(18)), 'damaged',
         'comment'),
    Case('zip_appended_data', lambda ctx: zip_variant()(ctx) + b'\0' * 64, 'damaged',
         'no zip end record'),
    Case('zip_prepended_data', lambda ctx: b'#!/bin/sh\n' + zip_variant()(ctx), 'damaged',
         'no zip archive'),
    Case('zip_symlink_record', zip_variant(fields=dict(data=str('/etc/passwd').encode(),
                                                       external=0o120777 << 16)), 'damaged',
         'declares 16 bytes'),
    Case('zip_storage_smaller_than_declared', zip_variant(fields=dict(data=FLOATS4[:4])),
         'damaged', 'declares 16 bytes, its record holds 4'),
    Case('zip_storage_missing', lambda ctx: torch_zip(weights_pickle(), {}), 'damaged',
         'does not hold'),
    Case('zip_big_endian', lambda ctx: torch_zip(weights_pickle(), {'0': FLOATS4},
                                                 byteorder=b'big'), 'refused', 'big-endian'),
    Case('zip_no_version_record', lambda ctx: zip_bytes(
        [r for r in records_of(torch_zip(weights_pickle(), {'0': FLOATS4}))
         if not r['name'].endswith('version')]), 'damaged', "torch's zip reader"),
    Case('zip_name_traversal', zip_variant(add=[zip_record('archive/../../evil', b'x')]),
         'refused', 'the record'),
    # -- 2. tar, torch's oldest format, which torch extracts with no filter
    Case('tar_hardlink_storages', tar_hardlink, 'refused', 'tar archive'),
    Case('tar_fifo_storages', tar_fifo, 'refused', 'tar archive'),
    Case('tar_symlink_storages', tar_symlink, 'refused', 'tar archive'),
    # -- 3. memory corruption through allowed objects
    Case('parameter_array_interface', lambda ctx: parameter_with_state(dct(
        __array_interface__=dct(data=tup(integer(4096), P.NEWFALSE), shape=tup(integer(8)),
                                typestr=text('|u1'), version=integer(3)))), 'refused',
         'a parameter carrying attributes'),
    Case('parameter_plain_attribute', lambda ctx: parameter_with_state(dct(note=integer(1))),
         'refused', 'a parameter carrying attributes'),
    Case('parameter_empty_state', lambda ctx: parameter_with_state(P.EMPTY_DICT), 'loads'),
    Case('history_buffer_called_with_parameter', lambda ctx: with_weights(call(
        glob('mmengine.logging.history_buffer', 'HistoryBuffer'),
        tensor(storage('0', 4), 0, (4,), (1,)))), 'refused', 'a call of HistoryBuffer'),
    Case('history_buffer_tensor_state', lambda ctx: with_weights(history_buffer(dct(
        _log_history=tensor(storage('0', 4), 0, (4,), (1,)), _count_history=lst()))),
         'damaged', 'HistoryBuffer holding'),
    Case('history_buffer_swapped_methods', lambda ctx: with_weights(history_buffer(dct(
        _log_history=lst(), _count_history=lst(), statistics_methods=dct(mean=call(
            glob('builtins', 'getattr'), glob('mmengine.logging.history_buffer',
                                              'HistoryBuffer'), text('max')))))), 'refused',
         'statistics methods'),
    Case('history_buffer_extra_attribute', lambda ctx: with_weights(history_buffer(dct(
        _log_history=lst(), _count_history=lst(), update=integer(1)))), 'refused',
         'HistoryBuffer'),
    Case('numpy_object_dtype', lambda ctx: with_weights(numpy_dtype('O8')), 'refused',
         'only numeric and bool dtypes'),
    Case('numpy_void_dtype', lambda ctx: with_weights(numpy_dtype('V8')), 'refused',
         'only numeric and bool dtypes'),
    Case('numpy_dtype_flags_state', lambda ctx: with_weights(dtype_state(
        'f8', standard_dtype_state(flags=63))), 'refused', "dtype's state"),
    Case('numpy_dtype_elsize_state', lambda ctx: with_weights(dtype_state(
        'i4', standard_dtype_state(elsize=4096))), 'refused', "dtype's state"),
    Case('numpy_dtype_state_twice', lambda ctx: with_weights(build(dtype_state(
        'f8', standard_dtype_state()), standard_dtype_state())), 'refused',
         'setting the state'),
    Case('numpy_scalar_wrong_size', lambda ctx: with_weights(call(
        glob('numpy.core.multiarray', 'scalar'), numpy_dtype('f8'), raw(b'\0' * 4))),
         'damaged', 'wrong number of bytes'),
    Case('numpy_array_state_twice', lambda ctx: with_weights(build(
        array((2,), 'f8', bytes(16)), tup(integer(1), tup(integer(4096)), numpy_dtype('f8'),
                                          P.NEWFALSE, raw(bytes(16))))), 'refused',
         'setting the state'),
    Case('numpy_array_short_data', lambda ctx: with_weights(array((1000,), 'f8', bytes(16))),
         'damaged', 'bytes of data'),
    Case('numpy_reconstruct_huge', lambda ctx: with_weights(call(
        glob('numpy.core.multiarray', '_reconstruct'), glob('numpy', 'ndarray'),
        tup(integer(10 ** 11)), raw(b'b'))), 'damaged', 'empty array'),
    Case('numpy_reconstruct_subclass', lambda ctx: with_weights(call(
        glob('numpy.core.multiarray', '_reconstruct'), glob('numpy', 'matrix'),
        tup(integer(0)), raw(b'b'))), 'refused', 'numpy.matrix'),
    Case('numpy_frombuffer_object', lambda ctx: with_weights(call(
        glob('numpy._core.numeric', '_frombuffer'), raw(bytes(8)), numpy_dtype('O8'),
        tup(integer(1)), text('C'))), 'refused', 'only numeric'),
    Case('device_tensor_from_numpy', lambda ctx: with_weights(call(
        glob('torch._utils', '_rebuild_device_tensor_from_numpy'), P.NONE)), 'refused',
         '_rebuild_device_tensor_from_numpy'),
    Case('sparse_tensor', lambda ctx: with_weights(call(
        glob('torch._utils', '_rebuild_sparse_tensor'), P.NONE)), 'refused',
         '_rebuild_sparse_tensor'),
    Case('tensor_past_its_storage', lambda ctx: torch_zip(program(dct(w=tensor(
        storage('0', 4), 0, (1000,), (1,)))), {'0': FLOATS4}), 'damaged', 'reaching element'),
    Case('tensor_offset_past_storage', lambda ctx: torch_zip(program(dct(w=tensor(
        storage('0', 4), 2 ** 40, (2,), (1,)))), {'0': FLOATS4}), 'damaged',
         'reaching element'),
    Case('tensor_negative_stride', lambda ctx: torch_zip(program(dct(w=tensor(
        storage('0', 4), 3, (4,), (-1,)))), {'0': FLOATS4}), 'damaged', 'invalid stride'),
    Case('tensor_over_a_foreign_object', lambda ctx: with_weights(call(
        glob('torch._utils', '_rebuild_tensor_v2'), raw(bytes(16)), integer(0),
        tup(integer(4)), tup(integer(1)), P.NEWFALSE, empty_hooks())), 'refused',
         "not one of the file's storages"),
    Case('legacy_wrong_storage_count', lambda ctx: legacy_weights(counts=(400,)), 'damaged',
         'holds 400 elements, the pickle declares 4'),
    Case('legacy_storage_never_filled', lambda ctx: legacy_weights(keys=(), data=(), counts=()),
         'damaged', 'list of storages'),
    Case('legacy_storage_cut_short', lambda ctx: legacy_weights(data=(FLOATS4[:8],)),
         'damaged', 'storage k ends past the end of the file'),
    Case('legacy_huge_declared_storage', lambda ctx: legacy_weights(declared=2 ** 40),
         'damaged', 'more storage bytes than the file holds'),
    Case('legacy_pickled_module', lambda ctx: legacy_file(program(tup(
        text('module'), glob('torch', 'Size'), text('f.py'), text('src')) + P.BINPERSID), [],
        [], []), 'refused', 'pickled module'),
    Case('ordered_dict_shadows_keys', lambda ctx: with_weights(build(
        call(glob('collections', 'OrderedDict')), dct(keys=integer(1)))), 'refused',
         'OrderedDict'),
    Case('ordered_dict_dunder_state', lambda ctx: with_weights(build(
        call(glob('collections', 'OrderedDict')), dct(__class__=P.NONE))), 'refused',
         'OrderedDict'),
    Case('appends_on_bytearray', lambda ctx: with_weights(call(
        glob('builtins', 'bytearray')) + P.MARK + integer(1) + P.APPENDS), 'refused',
         'APPENDS on a bytearray'),
    Case('setitem_on_tensor', lambda ctx: with_weights(tensor(storage('0', 4), 0, (4,), (1,))
                                                      + integer(0) + integer(5) + P.SETITEM),
         'refused', 'SETITEM on a Tensor'),
    Case('build_on_a_tensor', lambda ctx: with_weights(build(tensor(storage('0', 4), 0, (4,),
                                                                    (1,)), dct())),
         'refused', 'setting the state of a Tensor'),
    # -- 4. code, named directly
    Case('posix_system', system_call, 'refused', '`posix.system`'),
    Case('nt_system', lambda ctx: system_call(ctx, 'nt'), 'refused', '`nt.system`'),
    Case('builtins_eval', lambda ctx: with_weights(call(glob('builtins', 'eval'),
                                                        text('1'))), 'refused', 'builtins.eval'),
    Case('python2_builtin_eval', lambda ctx: with_weights(call(glob('__builtin__', 'eval'),
                                                               text('1'))), 'refused',
         'builtins.eval'),
    Case('importlib_import_module', lambda ctx: with_weights(call(
        glob('importlib', 'import_module'), text('os'))), 'refused', 'importlib.import_module'),
    Case('getattr_to_os', lambda ctx: with_weights(call(glob('builtins', 'getattr'),
                                                        glob('numpy', 'ndarray'), text('os'))),
         'refused', 'getattr'),
    Case('protocol0_inst', lambda ctx: with_weights(P.MARK + text(f'touch {ctx.marker}')
                                                    + P.INST + b'os\nsystem\n'), 'refused',
         'os.system|posix.system'),
    Case('copyreg_extension', lambda ctx: with_weights(P.EXT1 + b'\x07'), 'damaged',
         'copyreg extension'),
    Case('stack_global_non_str', lambda ctx: with_weights(integer(1) + integer(2)
                                                          + P.STACK_GLOBAL), 'damaged', ''),
    # -- 5. denial of service
    Case('bytearray_of_a_size', lambda ctx: with_weights(call(glob('builtins', 'bytearray'),
                                                              integer(10 ** 10))), 'refused',
         r'bytearray\(int\)'),
    Case('memo_amplification', memo_amplification, 'refused', 'more memory'),
    Case('frozenset_amplification', set_amplification, 'refused', 'more memory'),
    Case('deep_nesting', deep_nesting, 'loads'),
    Case('binbytes8_huge_length', lambda ctx: legacy_file(program(
        P.BINBYTES8 + struct.pack('<Q', 2 ** 62) + b'abc'), [], [], []), 'damaged', ''),
    Case('bytearray8_huge_length', lambda ctx: with_weights(
        P.BYTEARRAY8 + struct.pack('<Q', 2 ** 34) + b'abc'), 'damaged',
         'bytearray longer than the pickle'),
    Case('frame_huge', lambda ctx: with_weights(P.FRAME + struct.pack('<Q', 2 ** 62)),
         'damaged', ''),
    Case('long4_huge', lambda ctx: with_weights(P.LONG4 + struct.pack('<i', 2 ** 31 - 1)),
         'damaged', ''),
    # -- 6. names whose lookup would import modules
    Case('lazy_inductor_config', lambda ctx: with_weights(glob('torch._inductor.config',
                                                               'compile_threads')),
         'refused', 'torch._inductor.config'),
    Case('lazy_torch_attribute', lambda ctx: with_weights(glob('torch', '_dynamo')), 'refused',
         'torch._dynamo'),
    Case('lazy_numpy_submodule', lambda ctx: with_weights(glob('numpy', 'testing')), 'refused',
         'numpy.testing'),
    Case('mmengine_runner', lambda ctx: with_weights(glob('mmengine.runner', 'Runner')),
         'refused', 'mmengine.runner.Runner'),
    Case('nonexistent_module', lambda ctx: with_weights(glob('zz_no_such_module', 'x')),
         'damaged', 'unknown global'),
    Case('truncated_name', lambda ctx: with_weights(glob('torch._utils', '_rebu')), 'damaged',
         'unknown global'),
    # -- 7. legitimate files
    Case('mmengine_checkpoint', legit_checkpoint, 'loads'),
    Case('protocol5_numpy_array', lambda ctx: saved({'a': np.arange(6.0).reshape(2, 3)},
                                                    pickle_protocol=5), 'loads'),
    Case('legacy_format', lambda ctx: saved({'w': torch.ones(3)},
                                            _use_new_zipfile_serialization=False), 'loads'),
    Case('safetensors', safetensors_file, 'loads'),
    Case('safetensors_deeply_nested_header', lambda ctx: (lambda header: struct.pack(
        '<Q', len(header)) + header)(b'{"a":' + b'[' * 200_000 + b']' * 200_000 + b'}'),
         'damaged', ''),
    Case('safetensors_overlap', lambda ctx: safetensors_file(ctx, [0, 16]).replace(
        b'[0, 16]', b'[4, 20]'), 'damaged', 'outside the data|overlapping'),
]
