"""What a checkpoint's pickle may ask for: the objects in the files users actually bring.

A pickle is a small program: it names globals (``GLOBAL posix system``), calls them
(``REDUCE``), creates instances (``NEWOBJ``) and sets their state (``BUILD``). The
restricted unpickler (:mod:`.restricted_pickle`) lets a file do each of these only with the
objects listed here. The list covers, found by saving and reading each kind:

* tensors, parameters and storages as every torch from 0.4 to today writes them (the
  ``torch._utils._rebuild_*`` functions; storage classes are resolved by ``torch.load`` itself),
  dtypes, layouts, memory formats, ``torch.device`` and ``torch.Size``;
* Python containers: ``OrderedDict`` (state dicts, with their ``_metadata``), ``set``,
  ``frozenset``, ``complex``, ``bytearray``, ``slice``, and the latin-1 ``_codecs.encode`` that
  protocol-2 pickles use for ``bytes``;
* numpy arrays, scalars and dtypes under both module spellings (numpy 1 ``numpy.core``, numpy 2
  ``numpy._core``), which mmengine's ``meta`` and message hub hold, as did the original HRNet
  and mmseg 0.x training checkpoints (``best_mIoU``);
* mmengine's ``HistoryBuffer`` and the ``getattr(HistoryBuffer, 'min'|'max'|'current'|'mean')``
  it pickles in its state; ``builtins.getattr`` resolves to a guard that returns exactly those.

Calls (``REDUCE``) and instance creation (``NEWOBJ``) are allowed only on these objects, compared
by identity, and ``BUILD`` only on the containers that need it, so no chain of allowed objects
reaches anything else. A whole pickled ``nn.Module`` (``torch.save(model)``) is refused: it
needs the model's classes, i.e. importing and running code named by the file.
"""
import _compat_pickle
import codecs
import collections
import functools
import importlib.util
import sys
from typing import Any, Callable, Dict, FrozenSet, Tuple

import numpy as np
import torch

from .errors import RefusedByAllowList

#: The attributes an mmengine checkpoint fetches with ``getattr``: the statistics methods a
#: ``HistoryBuffer`` keeps in its state.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

#: ``torch._utils`` functions that rebuild tensors and parameters; those missing from the
#: running torch are skipped (``_rebuild_tensor_v3`` is newer than 2.1, for instance).
TORCH_REBUILD_FUNCTIONS = (
    '_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3', '_rebuild_parameter',
    '_rebuild_parameter_with_state', '_rebuild_qtensor', '_rebuild_sparse_tensor',
    '_rebuild_nested_tensor', '_rebuild_meta_tensor_no_storage',
    '_rebuild_device_tensor_from_numpy')


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``builtins.getattr`` as a checkpoint sees it: only HistoryBuffer's statistics methods.

    The real ``getattr`` would reach ``os.system`` from any allowed object
    (``getattr(getattr(np, 'os'), 'system')``), so anything else is refused.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise RefusedByAllowList(f'getattr({getattr(obj, "__qualname__", type(obj).__name__)}, '
                             f'{name!r})')


def latin1_encode(text: str, encoding: str = 'utf-8', errors: str = 'strict') -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it: ``bytes`` written as latin-1 text."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise RefusedByAllowList(f'_codecs.encode(<{type(text).__name__}>, {encoding!r})')
    return codecs.encode(text, encoding, errors)


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    return multiarray


def reconstruct_ndarray(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain arrays only (a subclass would run its own code)."""
    if subtype is not np.ndarray:
        raise RefusedByAllowList(f'numpy _reconstruct of {subtype!r}')
    return _multiarray()._reconstruct(subtype, shape, dtype)


def _numpy_entries() -> Dict[Tuple[str, str], Any]:
    multiarray = _multiarray()
    entries = {}
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries[module, '_reconstruct'] = reconstruct_ndarray
        entries[module, 'scalar'] = multiarray.scalar
    entries['numpy', 'ndarray'] = np.ndarray
    entries['numpy', 'dtype'] = np.dtype
    # numpy >= 1.25 pickles a dtype by its class (numpy.dtypes.Float64DType, ...).
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All'] if code not in 'Mm'}
    dtype_classes |= {type(np.dtype('datetime64[s]')), type(np.dtype('timedelta64[s]'))}
    for cls in dtype_classes - {np.dtype}:
        entries[cls.__module__, cls.__qualname__] = cls
    return entries


def _torch_entries() -> Dict[Tuple[str, str], Any]:
    entries = {('torch._utils', name): getattr(torch._utils, name)
               for name in TORCH_REBUILD_FUNCTIONS if hasattr(torch._utils, name)}
    entries['torch', 'device'] = torch.device
    entries['torch', 'Size'] = torch.Size
    entries['torch.serialization', '_get_layout'] = torch.serialization._get_layout
    constant_types = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)
    for name, value in vars(torch).items():
        if isinstance(value, constant_types):
            entries['torch', name] = value
    return entries


class AllowList:
    """The globals, calls, instance creations and state updates a checkpoint may ask for."""

    def __init__(self) -> None:
        from mmengine.logging import HistoryBuffer
        self.globals: Dict[Tuple[str, str], Any] = {
            ('collections', 'OrderedDict'): collections.OrderedDict,
            ('collections', 'Counter'): collections.Counter,
            ('builtins', 'set'): set,
            ('builtins', 'frozenset'): frozenset,
            ('builtins', 'complex'): complex,
            ('builtins', 'bytearray'): bytearray,
            ('builtins', 'slice'): slice,
            ('builtins', 'getattr'): history_buffer_getattr,
            ('_codecs', 'encode'): latin1_encode,
            ('mmengine.logging.history_buffer', 'HistoryBuffer'): HistoryBuffer,
            **_numpy_entries(),
            **_torch_entries(),
        }
        values = list(self.globals.values())
        self._callable_ids: FrozenSet[int] = frozenset(id(v) for v in values if callable(v))
        self._class_ids: FrozenSet[int] = frozenset(id(v) for v in values if isinstance(v, type))
        # BUILD sets an instance's state: only on the containers whose pickles carry one.
        self.state_types = (collections.OrderedDict, collections.Counter, HistoryBuffer)

    def find(self, module: str, name: str) -> Any:
        """The allowed object for ``module.name`` (Python 2 names mapped as pickle does)."""
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        try:
            return self.globals[module, name]
        except (KeyError, TypeError):
            raise RefusedByAllowList(f'{module}.{name}', global_exists(module, name)) from None

    def check_call(self, func: Any) -> None:
        if id(func) not in self._callable_ids:
            raise RefusedByAllowList(f'a call of {describe(func)}')

    def check_new(self, cls: Any) -> None:
        if id(cls) not in self._class_ids:
            raise RefusedByAllowList(f'a new {describe(cls)}')

    def check_build(self, inst: Any, state: Any) -> None:
        """Allow ``BUILD`` on numpy arrays/dtypes (their own ``__setstate__``) and on the
        state-carrying containers, with a plain ``{str: value}`` state that sets no dunder."""
        if isinstance(inst, (np.ndarray, np.dtype)):
            return
        if type(inst) in self.state_types and isinstance(state, dict) and all(
                isinstance(key, str) and not key.startswith('__') for key in state):
            return
        raise RefusedByAllowList(f'setting the state of {describe(inst)}')


def describe(obj: Any) -> str:
    """A short name for an object a pickle asked to use."""
    if isinstance(obj, type) or callable(obj):
        module = getattr(obj, '__module__', None) or ''
        name = getattr(obj, '__qualname__', None) or getattr(obj, '__name__', None) or repr(obj)
        return f'{module}.{name}' if module else name
    return f'a {type(obj).__qualname__} object'


def global_exists(module: str, name: str) -> bool:
    """Whether ``module.name`` names something real, without importing anything.

    Importing a module named by an untrusted file runs that module's code. A name counts as
    existing if its module is imported and has the attribute, or if the module is not imported
    but its top-level package can be found on the path (errs toward "exists", i.e. toward
    calling a real but unusual global unsafe, never safe).
    """
    if not isinstance(module, str) or not isinstance(name, str):
        return False
    if module in sys.modules:
        obj = sys.modules[module]
        for attr in name.split('.'):
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    top = module.split('.')[0]
    try:
        return bool(top) and (top in sys.modules or importlib.util.find_spec(top) is not None)
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def default_allow_list() -> AllowList:
    """The allow-list, built once per process (after numpy, torch and mmengine import)."""
    return AllowList()
