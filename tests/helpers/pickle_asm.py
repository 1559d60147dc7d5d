"""A tiny pickle and zip assembler for crafting hostile checkpoints opcode by opcode.

Pickles: ``program(call(glob('torch', 'Size'), tup(integer(1))))`` is the protocol-2 pickle of
``torch.Size((1,))``. Zips: :func:`zip_bytes` writes records exactly as described (method,
flags, extra fields, offsets), so that malformed archives can be made on purpose.
"""
import pickle
import struct
import zlib
from typing import List, Optional

P = pickle


def glob(module: str, name: str) -> bytes:
    return P.GLOBAL + f'{module}\n{name}\n'.encode()


def text(value: str) -> bytes:
    data = value.encode('utf-8')
    return P.BINUNICODE + struct.pack('<I', len(data)) + data


def raw(value: bytes) -> bytes:
    return P.BINBYTES + struct.pack('<I', len(value)) + value


def integer(value: int) -> bytes:
    if -2 ** 31 <= value < 2 ** 31:
        return P.BININT + struct.pack('<i', value)
    data = value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)
    return P.LONG1 + bytes([len(data)]) + data


def tup(*items: bytes) -> bytes:
    return P.MARK + b''.join(items) + P.TUPLE


def lst(*items: bytes) -> bytes:
    return P.EMPTY_LIST + (P.MARK + b''.join(items) + P.APPENDS if items else b'')


def dct(**items: bytes) -> bytes:
    body = b''.join(text(key) + value for key, value in items.items())
    return P.EMPTY_DICT + (P.MARK + body + P.SETITEMS if items else b'')


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + P.REDUCE


def build(obj: bytes, state: bytes) -> bytes:
    return obj + state + P.BUILD


def program(*parts: bytes, protocol: int = 2) -> bytes:
    return P.PROTO + bytes([protocol]) + b''.join(parts) + P.STOP


def empty_hooks() -> bytes:
    return call(glob('collections', 'OrderedDict'))


def storage(key: str, numel: int, kind: str = 'FloatStorage', location: str = 'cpu',
            view: Optional[bytes] = None, legacy: bool = False) -> bytes:
    """A persistent id naming a storage (zip: 5 fields; legacy: 6, with the view)."""
    fields = [text('storage'), glob('torch', kind), text(key), text(location), integer(numel)]
    if legacy:
        fields.append(view if view is not None else P.NONE)
    return tup(*fields) + P.BINPERSID


def tensor(storage_ref: bytes, offset: int, size, stride) -> bytes:
    return call(glob('torch._utils', '_rebuild_tensor_v2'), storage_ref, integer(offset),
                tup(*map(integer, size)), tup(*map(integer, stride)), P.NEWFALSE,
                empty_hooks())


def zip_record(name: str, data: bytes, method: int = 0, flags: int = 0,
               central_extra: bytes = b'', local_extra: bytes = b'',
               external: int = 0) -> dict:
    return dict(name=name, data=data, method=method, flags=flags, central_extra=central_extra,
                local_extra=local_extra, external=external)


def zip_bytes(records: List[dict], comment: bytes = b'', prefix: bytes = b'',
              overlap_last: bool = False) -> bytes:
    """A zip with exactly these records (``data`` is what is stored: compress it yourself for
    ``method=8``; the sizes written are its length and that of the inflated data)."""
    out = bytearray(prefix)
    central = bytearray()
    offsets = []
    for record in records:
        name = record['name'].encode()
        data = record['data']
        plain = zlib.decompress(data, -15) if record['method'] == 8 else data
        crc = zlib.crc32(plain)
        offset = len(out) - len(prefix) if not prefix else len(out)
        if overlap_last and record is records[-1]:
            offset = offsets[-1]
        else:
            out += struct.pack('<4sHHHHHIIIHH', b'PK\x03\x04', 20, record['flags'],
                               record['method'], 0, 0, crc, len(data), len(plain), len(name),
                               len(record['local_extra']))
            out += name + record['local_extra'] + data
        offsets.append(offset)
        central += struct.pack('<4sHHHHHHIIIHHHHHII', b'PK\x01\x02', 20, 20, record['flags'],
                               record['method'], 0, 0, crc, len(data), len(plain), len(name),
                               len(record['central_extra']), 0, 0, 0, record['external'],
                               offset)
        central += name + record['central_extra']
    cd_offset = len(out)
    out += central
    out += struct.pack('<4sHHHHIIH', b'PK\x05\x06', 0, 0, len(records), len(records),
                       len(central), cd_offset, len(comment)) + comment
    return bytes(out)


def torch_zip(data_pkl: bytes, storages: Optional[dict] = None, extra: Optional[list] = None,
              folder: str = 'archive', byteorder: bytes = b'little') -> bytes:
    """A torch-format archive with this data.pkl and these ``{key: bytes}`` storages."""
    records = [zip_record(f'{folder}/data.pkl', data_pkl),
               zip_record(f'{folder}/byteorder', byteorder)]
    for key, data in (storages or {}).items():
        records.append(zip_record(f'{folder}/data/{key}', data))
    records.append(zip_record(f'{folder}/version', b'3\n'))
    records += extra or []
    return zip_bytes(records)


def legacy_file(main: bytes, keys: List[str], storages: List[bytes], numels: List[int],
                magic: int = 0x1950a86a20f9469cfc6c, little_endian: bool = True) -> bytes:
    """A legacy (torch < 1.6) stream: header pickles, the main pickle, keys, storages."""
    header = pickle.dumps(magic, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(
        {'protocol_version': 1001, 'little_endian': little_endian,
         'type_sizes': {'short': 2, 'int': 4, 'long': 8}}, protocol=2)
    body = b''.join(struct.pack('<q', numel) + data for numel, data in zip(numels, storages))
    return header + main + pickle.dumps(keys, protocol=2) + body
