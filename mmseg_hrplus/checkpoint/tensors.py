"""Storages and tensors built from a checkpoint's records, with every number checked.

``torch.save`` writes each storage as raw bytes and each tensor as a call
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` in the
pickle. Torch's own rebuild functions trust those numbers; the ones here check them first: the
storage is one this reader made from a record of exactly the declared size, and the view it
asks for lies inside that storage. A pickle can reach these functions only with storages the
reader made (:class:`StorageRef`), never with an object of its own.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch

from .errors import Damaged, Refused

MapLocation = Union[None, str, torch.device, Callable, Dict[str, str]]

#: The storage classes a pickle names, and the element type of each. ``torch.save`` names
#: typed storages (``torch.FloatStorage``) on every release; ``UntypedStorage`` holds bytes.
STORAGE_DTYPES: Dict[str, torch.dtype] = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool, 'ComplexFloatStorage': torch.complex64,
    'ComplexDoubleStorage': torch.complex128, 'UntypedStorage': torch.uint8,
}
#: The dtypes a tensor may have (``_rebuild_tensor_v3`` names one beside an untyped storage).
TENSOR_DTYPES = frozenset(STORAGE_DTYPES.values())

_LOCATION = re.compile(r'(cpu|cuda|mps|xpu|hpu|meta)(:[0-9]{1,4})?\Z')
_MAX_DIM = 64
_MAX_EXTENT = 1 << 62


@dataclass(frozen=True)
class StorageType:
    """What a pickle's ``torch.FloatStorage`` (and friends) resolves to: a name and a dtype."""
    name: str
    dtype: torch.dtype


@dataclass(frozen=True)
class StorageRef:
    """A storage the reader made from a record: ``numel`` elements of ``dtype`` starting at
    element ``start`` of ``storage`` (``start`` > 0 only for the legacy format's views)."""
    storage: torch.UntypedStorage
    dtype: torch.dtype
    numel: int
    start: int = 0


def element_size(dtype: torch.dtype) -> int:
    return dtype.itemsize  # torch >= 2.1; looked up per tensor, so no tensor is made for it


def restore_location(storage: torch.UntypedStorage, location: Any,
                     map_location: MapLocation) -> torch.UntypedStorage:
    """Place a CPU storage as ``torch.load(map_location=...)`` would.

    ``location`` comes from the file and may only name a device type torch knows; moving the
    storage is torch's own ``default_restore_location``. A callable ``map_location`` is the
    caller's code and is called as torch calls it.
    """
    if not isinstance(location, str) or not _LOCATION.match(location):
        raise Damaged(f'a storage placed on {str(location)[:40]!r}, which is no device')
    if callable(map_location) and not isinstance(map_location, (str, torch.device)):
        placed = map_location(storage, location)
        if placed is not None:
            return placed
    elif isinstance(map_location, dict):
        location = map_location.get(location, location)
    elif map_location is not None:
        location = str(map_location)
    if location == 'cpu':
        return storage
    return torch.serialization.default_restore_location(storage, location)


def _check_ints(value: Any, what: str, length: Optional[int] = None) -> Tuple[int, ...]:
    if not isinstance(value, tuple) or (length is not None and len(value) != length) or \
            len(value) > _MAX_DIM or not all(type(v) is int and 0 <= v < _MAX_EXTENT
                                             for v in value):
        raise Damaged(f'a tensor with an invalid {what}')
    return value


def _rebuild(storage: Any, offset: Any, size: Any, stride: Any, dtype: torch.dtype,
             requires_grad: Any = False, hooks: Any = None, metadata: Any = None
             ) -> torch.Tensor:
    if not isinstance(storage, StorageRef):
        raise Refused('a tensor over something that is not one of the file\'s storages')
    if type(offset) is not int or not 0 <= offset < _MAX_EXTENT:
        raise Damaged('a tensor with an invalid storage offset')
    size = _check_ints(tuple(size) if isinstance(size, torch.Size) else size, 'size')
    stride = _check_ints(stride, 'stride', len(size))
    if not isinstance(requires_grad, bool):
        raise Damaged('a tensor whose requires_grad is not a bool')
    if hooks is not None and not (isinstance(hooks, OrderedDict) and not hooks):
        raise Refused('a tensor with backward hooks')
    if not _empty(metadata):
        raise Refused('a tensor with metadata (conjugate, negative or other bits)')
    if dtype not in TENSOR_DTYPES:
        raise Refused(f'a tensor of dtype {dtype}')
    itemsize = element_size(dtype)
    available = (storage.numel * element_size(storage.dtype)) // itemsize
    start = (storage.start * element_size(storage.dtype)) // itemsize
    if all(size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= available:
            raise Damaged(f'a tensor reaching element {last} of a storage of {available}')
    tensor = torch.empty((0,), dtype=dtype, device=storage.storage.device)
    tensor.set_(storage.storage, start + offset, size, stride)
    if requires_grad:
        if not (dtype.is_floating_point or dtype.is_complex):
            raise Damaged(f'a tensor of dtype {dtype} that requires grad')
        tensor.requires_grad_(True)
    return tensor


def rebuild_tensor(storage, offset, size, stride) -> torch.Tensor:
    """``torch._utils._rebuild_tensor`` (files of torch < 0.4.1)."""
    return _rebuild(storage, offset, size, stride, _dtype_of(storage))


def rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks,
                      metadata=None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2``: what every torch since 0.4.1 writes."""
    return _rebuild(storage, offset, size, stride, _dtype_of(storage), requires_grad, hooks,
                    metadata)


def rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                      metadata=None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v3``: an untyped storage with the dtype beside it."""
    if not isinstance(dtype, torch.dtype):
        raise Damaged('a tensor whose dtype is not a torch dtype')
    return _rebuild(storage, offset, size, stride, dtype, requires_grad, hooks, metadata)


def rebuild_parameter(data, requires_grad, hooks) -> torch.nn.Parameter:
    """``torch._utils._rebuild_parameter``."""
    if type(data) is not torch.Tensor or not isinstance(requires_grad, bool):
        raise Damaged('a parameter that is not built from a tensor')
    if hooks is not None and not (isinstance(hooks, OrderedDict) and not hooks):
        raise Refused('a parameter with backward hooks')
    if requires_grad and not (data.dtype.is_floating_point or data.dtype.is_complex):
        raise Damaged(f'a parameter of dtype {data.dtype} that requires grad')
    return torch.nn.Parameter(data, requires_grad)


def rebuild_parameter_with_state(data, requires_grad, hooks, state) -> torch.nn.Parameter:
    """``torch._utils._rebuild_parameter_with_state``, for the state torch writes for a plain
    parameter: none. Attributes set on a parameter (torch would restore any, dunder names
    included) are refused."""
    if not (_empty(state) or (type(state) is tuple and len(state) == 2 and
                              all(_empty(part) for part in state))):
        raise Refused('a parameter carrying attributes')
    return rebuild_parameter(data, requires_grad, hooks)


def _empty(value: Any) -> bool:
    """None or an empty plain dict (compared by type: a file's object is never asked ``==``)."""
    return value is None or (type(value) is dict and not value)


def _dtype_of(storage: Any) -> torch.dtype:
    if not isinstance(storage, StorageRef):
        raise Refused('a tensor over something that is not one of the file\'s storages')
    return storage.dtype


#: The rebuild functions a pickle may name, by their name in ``torch._utils``.
REBUILD_FUNCTIONS: Dict[str, Callable] = {
    '_rebuild_tensor': rebuild_tensor,
    '_rebuild_tensor_v2': rebuild_tensor_v2,
    '_rebuild_tensor_v3': rebuild_tensor_v3,
    '_rebuild_parameter': rebuild_parameter,
    '_rebuild_parameter_with_state': rebuild_parameter_with_state,
}


def read_exactly_into(file, view: memoryview, what: str) -> None:
    """Fill ``view`` from ``file``'s position; a file that ends first is damaged (``what``
    names the record in the error)."""
    done = 0
    while done < view.nbytes:
        got = file.readinto(view[done:])
        if not got:
            raise Damaged(f'{what} ends past the end of the file')
        done += got


def new_storage(nbytes: int) -> Tuple[torch.Tensor, memoryview]:
    """An uninitialised CPU byte tensor of ``nbytes`` and a writable view of its memory, for a
    record to be copied into directly (one copy, as ``torch.load`` makes)."""
    buffer = torch.empty((nbytes,), dtype=torch.uint8)
    return buffer, memoryview(buffer.numpy()).cast('B')
