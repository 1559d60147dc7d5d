"""safetensors, the weights format with no code path: read and written here, without pickle.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, and the bytes. The reader checks every range (inside the data,
exactly the declared size, no overlaps, no holes: the format's own rules) before copying any
byte. mmengine's ``meta`` travels in the header's ``__metadata__`` as JSON under
:data:`META_KEY`; a file with it reads back as ``{'state_dict': ..., 'meta': ...}``, a file
without it (written by another library) as a plain state dict.
"""
import json
import math
import os
import struct
from collections import OrderedDict
from typing import IO, Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from .errors import Damaged, Refused
from .tensors import (MapLocation, element_size, new_storage, read_exactly_into,
                      restore_location)

#: The ``__metadata__`` key holding mmengine's ``meta`` as JSON.
META_KEY = 'mmengine_meta'
MAX_HEADER_BYTES = 100_000_000  # the limit of the safetensors library
DTYPES: Dict[str, torch.dtype] = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
    'U8': torch.uint8, 'BOOL': torch.bool, 'C64': torch.complex64,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """A header length that fits the file, followed by the JSON header's ``{``."""
    if len(head) < 9:
        return False
    length = struct.unpack('<Q', head[:8])[0]
    return 2 <= length <= min(MAX_HEADER_BYTES, size - 8) and head[8:9] == b'{'


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise Damaged(f'the safetensors header names {key!r} twice')
        result[key] = value
    return result


def _header(file: IO[bytes], size: int) -> Tuple[dict, int]:
    file.seek(0)
    length = struct.unpack('<Q', file.read(8))[0]
    if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
        raise Damaged('a safetensors header longer than the file')
    try:
        header = json.loads(file.read(length).decode('utf-8'), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as err:
        raise Damaged(f'a safetensors header that is not JSON ({str(err)[:60]})') from None
    if type(header) is not dict:
        raise Damaged('a safetensors header that is not a JSON object')
    return header, 8 + length


def _entry(name: str, entry: Any, data_size: int) -> Tuple[torch.dtype, Tuple[int, ...], int,
                                                            int]:
    if type(entry) is not dict or set(entry) != {'dtype', 'shape', 'data_offsets'}:
        raise Damaged(f'safetensors entry {name[:60]!r} is not (dtype, shape, data_offsets)')
    if entry['dtype'] not in DTYPES:
        raise Refused(f'safetensors entry {name[:60]!r} has dtype {str(entry["dtype"])[:10]}, '
                      f'not one of {", ".join(DTYPES)}')
    shape, offsets = entry['shape'], entry['data_offsets']
    if type(shape) is not list or len(shape) > 64 or not all(
            type(n) is int and 0 <= n < (1 << 48) for n in shape):
        raise Damaged(f'safetensors entry {name[:60]!r} has an invalid shape')
    if type(offsets) is not list or len(offsets) != 2 or not all(
            type(n) is int for n in offsets) or not 0 <= offsets[0] <= offsets[1] <= data_size:
        raise Damaged(f'safetensors entry {name[:60]!r} lies outside the data')
    dtype = DTYPES[entry['dtype']]
    if offsets[1] - offsets[0] != math.prod(shape) * element_size(dtype):
        raise Damaged(f'safetensors entry {name[:60]!r}: {offsets[1] - offsets[0]} bytes for '
                      f'shape {shape}')
    return dtype, tuple(shape), offsets[0], offsets[1]


def read_safetensors(file: IO[bytes], size: int, map_location: MapLocation) -> Any:
    """The tensors of a safetensors file (and mmengine's meta, if the header carries it)."""
    header, data_start = _header(file, size)
    metadata = header.pop('__metadata__', None)
    if metadata is not None and (type(metadata) is not dict or not all(
            type(k) is str and type(v) is str for k, v in metadata.items())):
        raise Damaged('safetensors __metadata__ that is not a map of strings')
    entries = {name: _entry(name, entry, size - data_start) for name, entry in header.items()}
    spans = sorted((begin, end) for _, _, begin, end in entries.values())
    covered = 0
    for begin, end in spans:
        if begin != covered:
            raise Damaged('safetensors data with overlapping ranges or holes')
        covered = end
    if covered != size - data_start:
        raise Damaged('safetensors data with bytes no tensor uses')
    state_dict = OrderedDict()
    for name, (dtype, shape, begin, end) in entries.items():
        buffer, view = new_storage(end - begin)
        file.seek(data_start + begin)
        read_exactly_into(file, view, f'safetensors entry {name[:60]!r}')
        storage = restore_location(buffer.untyped_storage(), 'cpu', map_location)
        numel = math.prod(shape)
        tensor = torch.empty((0,), dtype=dtype, device=storage.device)
        state_dict[name] = tensor.set_(storage, 0, shape, _contiguous_strides(shape)) \
            if numel else torch.empty(shape, dtype=dtype, device=storage.device)
    if metadata and META_KEY in metadata:
        try:
            meta = json.loads(metadata[META_KEY])
        except ValueError:
            raise Damaged('safetensors meta that is not JSON') from None
        return {'meta': meta, 'state_dict': state_dict}
    return state_dict


def _contiguous_strides(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _json_value(value: Any) -> Any:
    """mmengine meta as JSON: numpy and torch scalars as numbers, tuples as lists; anything
    else that JSON cannot hold as its text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def save_safetensors(path: str, state_dict: Mapping[str, torch.Tensor],
                     meta: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``state_dict`` (and ``meta``, as JSON) to ``path`` in the safetensors format.

    Tensors are written dense and contiguous on the CPU; tensors sharing memory are written
    each on its own, as the format requires. Written to a temporary file and renamed, so an
    interrupted write leaves no half file at ``path``.
    """
    header: Dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f'safetensors holds str -> tensor, got {type(name).__name__} -> '
                            f'{type(tensor).__name__}')
        if tensor.dtype not in _NAMES:
            raise TypeError(f'{name}: dtype {tensor.dtype} cannot be written to safetensors '
                            f'(one of {", ".join(map(str, _NAMES))})')
        data = tensor.detach().to('cpu').contiguous().reshape(-1).view(torch.uint8).numpy()
        header[name] = {'dtype': _NAMES[tensor.dtype], 'shape': list(tensor.shape),
                        'data_offsets': [offset, offset + data.nbytes]}
        blobs.append(data)
        offset += data.nbytes
    metadata = {'format': 'pt'}
    if meta is not None:
        metadata[META_KEY] = json.dumps(meta, default=_json_value)
    header['__metadata__'] = metadata
    encoded = json.dumps(header, separators=(',', ':')).encode('utf-8')
    encoded += b' ' * (-len(encoded) % 8)
    partial = f'{path}.partial-{os.getpid()}'
    try:
        with open(partial, 'wb') as f:
            f.write(struct.pack('<Q', len(encoded)))
            f.write(encoded)
            for blob in blobs:
                f.write(memoryview(blob))
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
