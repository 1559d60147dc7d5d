"""``torch.save``'s two formats, parsed by us: the zip archive (torch >= 1.6) and the legacy
stream of pickles (torch 0.4 to 1.5, the format of the 2019 releases our converters take).

Both are a pickle whose persistent ids name storages, plus the storages' raw bytes. Here the
pickle goes through :mod:`.restricted_pickle` and each storage is made by us from bytes whose
count we checked against the pickle's declaration; then it is placed as ``map_location`` says.
``torch.load`` is never called: it would hand a TorchScript archive to ``torch.jit.load``, a
tar file to ``tarfile`` extraction, and trust the declared sizes.
"""
import io
import pickle
from typing import IO, Any, Dict, Optional, Set, Tuple

import torch

from . import restricted_pickle
from .errors import Damaged, Refused
from .tensors import (MapLocation, StorageRef, StorageType, element_size, new_storage,
                      read_exactly_into, restore_location)
from .zip_archive import TorchArchive

#: The first pickle of a legacy file, and the format version after it.
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
_MAX_STORAGE_BYTES = 1 << 46


class PlacementError(Exception):
    """Torch could not place a storage where the file or ``map_location`` says (a CUDA
    storage on a machine without CUDA): not damage, so its words are kept."""


def _place(storage: torch.UntypedStorage, location: Any,
           map_location: MapLocation) -> torch.UntypedStorage:
    try:
        placed = restore_location(storage, location, map_location)
    except (RuntimeError, AssertionError) as err:
        raise PlacementError(f'{type(err).__name__}: {" ".join(str(err).split())}') from None
    if not isinstance(placed, torch.UntypedStorage):
        placed = getattr(placed, '_untyped_storage', placed)
    if not isinstance(placed, torch.UntypedStorage):
        raise PlacementError(f'map_location returned a {type(placed).__name__}, not a storage')
    return placed


def _storage_declaration(pid: Any, fields: int) -> Tuple[StorageType, Any, Any, int, tuple]:
    if type(pid) is not tuple or not pid:
        raise Damaged('a persistent id that is not a tuple')
    kind = pid[0].decode('ascii', 'replace') if isinstance(pid[0], bytes) else pid[0]
    if kind == 'module':
        raise Refused('the file holds a pickled module (torch.save of a whole model), whose '
                      'class would have to be imported and run')
    if kind != 'storage' or len(pid) != fields:
        raise Damaged(f'an unknown persistent id {str(kind)[:30]!r}')
    storage_type, key, location, numel = pid[1:5]
    if not isinstance(storage_type, StorageType):
        raise Damaged('a storage whose type is not a torch storage class')
    if type(numel) is not int or numel < 0 or \
            numel * element_size(storage_type.dtype) > _MAX_STORAGE_BYTES:
        raise Damaged('a storage of an invalid size')
    if isinstance(location, bytes):
        location = location.decode('ascii', 'replace')
    return storage_type, key, location, numel, pid[5:]


def read_zip(archive: TorchArchive, map_location: MapLocation) -> Any:
    """What the archive's data.pkl holds, with each storage read from its record."""
    storages: Dict[str, StorageRef] = {}

    def persistent_load(pid: Any) -> StorageRef:
        storage_type, key, location, numel, _ = _storage_declaration(pid, 5)
        if type(key) is not str or not key.isdigit():
            raise Damaged('a storage key that is not a record number')
        if key in storages:
            if storages[key].dtype != storage_type.dtype:
                raise Damaged(f'storage {key} declared with two dtypes')
            if storages[key].numel != numel:
                raise Damaged(f'storage {key} declared with two sizes')
            return storages[key]
        name = f'data/{key}'
        if name not in archive.records:
            raise Damaged(f'the pickle names storage {key}, which the archive does not hold')
        nbytes = numel * element_size(storage_type.dtype)
        if archive.records[name].size != nbytes:
            raise Damaged(f'storage {key}: the pickle declares {nbytes} bytes, its record holds '
                          f'{archive.records[name].size}')
        buffer, view = new_storage(nbytes)
        archive.read_into(name, view)
        storage = _place(buffer.untyped_storage(), location, map_location)
        storages[key] = StorageRef(storage, storage_type.dtype, numel)
        return storages[key]

    data = archive.read('data.pkl')
    unpickler = restricted_pickle.Unpickler(io.BytesIO(data), persistent_load, len(data))
    return unpickler.load()


class BoundedReader:
    """A binary file seen from ``start`` to ``end`` only: no read asks the OS (or allocates)
    for more than what is left, whatever length a pickle opcode declares."""

    def __init__(self, file: IO[bytes], start: int, end: int) -> None:
        self.file, self.end = file, end
        self.file.seek(start)

    def _left(self, n: Optional[int]) -> int:
        left = max(self.end - self.file.tell(), 0)
        return left if n is None or n < 0 else min(n, left)

    def read(self, n: Optional[int] = -1) -> bytes:
        return self.file.read(self._left(n))

    def readline(self, limit: int = -1) -> bytes:
        return self.file.readline(self._left(limit if limit >= 0 else 1 << 20))

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast('B')
        return self.file.readinto(view[:self._left(len(view))])

    def tell(self) -> int:
        return self.file.tell()


def read_legacy(file: IO[bytes], size: int, map_location: MapLocation) -> Any:
    """The legacy stream: magic, version, system info, the data pickle, the list of storage
    keys, then each storage as an 8-byte element count and its bytes."""
    stream = BoundedReader(file, 0, size)
    header = [restricted_pickle.load(stream, size_hint=size) for _ in range(3)]
    magic, version, info = header
    if type(magic) is not int or magic != LEGACY_MAGIC:
        raise Damaged('not a PyTorch checkpoint (no zip archive, no legacy magic number)')
    if type(version) is not int or version != LEGACY_PROTOCOL:
        raise Damaged(f'legacy format version {str(version)[:20]}, not {LEGACY_PROTOCOL}')
    if type(info) is not dict or info.get('little_endian') is not True:
        raise Refused('the file was written on a big-endian machine, which this reader does '
                      'not convert')

    roots: Dict[Any, StorageRef] = {}
    views: Dict[Any, StorageRef] = {}
    locations: Dict[Any, str] = {}
    declared = [0]  # storage bytes declared so far: each must be in the file

    def persistent_load(pid: Any) -> StorageRef:
        storage_type, key, location, numel, (view,) = _storage_declaration(pid, 6)
        if type(key) not in (str, int):
            raise Damaged('a storage key that is neither a string nor a number')
        root = roots.get(key)
        if root is None:
            declared[0] += 8 + numel * element_size(storage_type.dtype)
            if declared[0] > size:
                raise Damaged('the pickle declares more storage bytes than the file holds')
            buffer, _ = new_storage(numel * element_size(storage_type.dtype))
            root = roots[key] = StorageRef(buffer.untyped_storage(), storage_type.dtype, numel)
            locations[key] = location
        elif root.dtype != storage_type.dtype or root.numel != numel:
            raise Damaged(f'storage {str(key)[:20]} declared twice, differently')
        if view is None:
            return root
        if type(view) is not tuple or len(view) != 3 or not all(
                type(v) is int for v in view[1:]):
            raise Damaged('a storage view that is not (key, offset, size)')
        view_key, offset, view_size = view
        if not 0 <= offset <= offset + view_size <= numel:
            raise Damaged('a storage view outside its storage')
        if view_key not in views:
            views[view_key] = StorageRef(root.storage, root.dtype, view_size, offset)
        return views[view_key]

    result = restricted_pickle.Unpickler(stream, persistent_load, size).load()
    keys = restricted_pickle.load(stream, size_hint=size)
    if type(keys) is not list or set(keys) != set(roots) or len(keys) != len(roots):
        raise Damaged('the list of storages disagrees with the storages the pickle uses')
    for key in keys:
        _fill_legacy_storage(file, stream, roots[key], key)
    if file.tell() != size:
        raise Damaged(f'{size - file.tell()} bytes after the last storage')
    return _place_legacy(result, roots, locations, map_location)


def _fill_legacy_storage(file: IO[bytes], stream: BoundedReader, root: StorageRef,
                         key: Any) -> None:
    count = stream.read(8)
    if len(count) != 8:
        raise Damaged(f'storage {str(key)[:20]} is missing (the file ends early)')
    declared = int.from_bytes(count, 'little', signed=True)
    if declared != root.numel:
        raise Damaged(f'storage {str(key)[:20]} holds {declared} elements, the pickle '
                      f'declares {root.numel}')
    nbytes = root.numel * element_size(root.dtype)
    as_bytes = torch.empty((0,), dtype=torch.uint8).set_(root.storage, 0, (nbytes,), (1,))
    view = memoryview(as_bytes.numpy()).cast('B')
    read_exactly_into(stream, view, f'storage {str(key)[:20]}')


def _place_legacy(result: Any, roots: Dict[Any, StorageRef], locations: Dict[Any, str],
                  map_location: MapLocation) -> Any:
    """Move the storages the file (or ``map_location``) places off the CPU, and every tensor
    built over them (legacy tensors are built before their bytes are read)."""
    moved = {}
    for key, root in roots.items():
        placed = _place(root.storage, locations[key], map_location)
        if placed is not root.storage:
            moved[root.storage.data_ptr(), root.storage.nbytes()] = placed
    if not moved:
        return result
    for tensor in _tensors_in(result, set()):
        storage = tensor.untyped_storage()
        target = moved.get((storage.data_ptr(), storage.nbytes()))
        if target is None:
            continue
        with torch.no_grad():
            tensor.data = torch.empty((0,), dtype=tensor.dtype, device=target.device).set_(
                target, tensor.storage_offset(), tensor.size(), tensor.stride())
    return result


def _tensors_in(obj: Any, seen: Set[int]):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors_in(value, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for value in obj:
            yield from _tensors_in(value, seen)


#: How a legacy file starts: its magic number pickled with protocol 2.
LEGACY_MAGIC_PREFIX = pickle.dumps(LEGACY_MAGIC, protocol=2)[:4]
