"""What a checkpoint's pickle may name, and the checked builder each name stands for.

A pickle is a small program: it names globals (``GLOBAL posix system``), calls them
(``REDUCE``), creates instances (``NEWOBJ``) and sets their state (``BUILD``). Here a name never
resolves to the real object when calling it could do anything but build plain data: it resolves
to a :class:`Builder`, our own function that checks the exact types and sizes of its arguments
and then builds the value. The names are those found in the files users bring, by saving and
reading each kind:

* tensors and parameters as every torch from 0.4 to today writes them (``torch._utils``'s
  rebuild functions, see :mod:`.tensors`), storage classes, dtypes, layouts, memory formats,
  ``torch.device`` and ``torch.Size``;
* Python containers: ``OrderedDict`` (state dicts, with their ``_metadata``), ``Counter``,
  ``set``, ``frozenset``, ``complex``, ``bytearray``, ``slice``, and the latin-1
  ``_codecs.encode`` that protocol-2 pickles use for ``bytes``;
* numpy arrays, scalars and dtypes under both module spellings (numpy 1 ``numpy.core``, numpy
  2 ``numpy._core``), protocol 5's ``_frombuffer`` included: numeric and bool dtypes only (an
  object dtype would let file bytes be read as pointers);
* mmengine's ``HistoryBuffer`` (message hub) and the statistics methods it keeps in its state
  (``getattr(HistoryBuffer, 'mean')`` in protocol 2, ``HistoryBuffer.mean`` in protocol 4).

What is refused: every other name, any call or instance creation of something that is not a
builder, a second state update of any object, and state updates outside the few objects whose
pickles carry one. Sparse, quantized, nested and device-only tensors are not among the names:
weights files do not hold them, and their rebuild functions trust the file's indices.
"""
import _compat_pickle
import collections
import functools
import math
import re
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from .errors import Damaged, RefusedByAllowList
from .names import global_exists
from .tensors import REBUILD_FUNCTIONS, STORAGE_DTYPES, StorageType

#: The statistics methods a ``HistoryBuffer`` keeps in its pickled state.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
#: numpy dtype kinds a file may build: bool, signed, unsigned, float, complex.
NUMERIC_KINDS = frozenset('biufc')
_DTYPE_SPEC = re.compile(r'(b1|[iu][1248]|f(2|4|8|16)|c(8|16|32)|\?)\Z')
_HISTORY_KEYS = frozenset({'max_length', '_log_history', '_count_history',
                           'statistics_methods'})


class Builder:
    """A name a pickle may call: ``call(unpickler, *args)`` checks the arguments and builds.

    Args:
        name: how the file names it (for errors).
        call: the checked builder for ``REDUCE``; None if it may not be called.
        new: the checked builder for ``NEWOBJ`` (``cls.__new__(cls, *args)``); None if the
            name may not be instantiated that way.
    """

    def __init__(self, name: str, call: Optional[Callable] = None,
                 new: Optional[Callable] = None, target: Any = None) -> None:
        self.name = name
        self.call = call
        self.new = new
        self.target = target  # the class it stands for, where a pickle names it as a value

    def __repr__(self) -> str:
        return self.name


# ----------------------------------------------------------------------------- python objects

def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (list, tuple, dict, set, frozenset, bytes,
                                            bytearray, str)) else 0


def _container(kind: type) -> Callable:
    def build(unpickler, *args):
        if len(args) > 1 or (args and type(args[0]) not in (list, tuple, set, frozenset, dict)):
            raise Damaged(f'{kind.__name__}() of something that is not a plain container')
        if args:
            unpickler.charge(64 * _sized(args[0]))
        built = kind(*args)
        return built
    return build


def _ordered_dict(unpickler, *args):
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        raise Damaged('OrderedDict() of something that is not a list of pairs')
    if args:
        unpickler.charge(64 * len(args[0]))
    built = collections.OrderedDict(*args)
    unpickler.expect_state(built, _ordered_dict_state)
    return built


def _ordered_dict_state(unpickler, target, state):
    """A state dict's ``_metadata`` (and any other plain attribute torch's state dicts may
    carry), but never a name OrderedDict itself has (``keys``, ``__class__``...)."""
    if type(state) is not dict or not all(
            type(key) is str and not key.startswith('_' * 2) and
            not hasattr(collections.OrderedDict, key) for key in state):
        raise RefusedByAllowList('setting the state of an OrderedDict beyond plain attributes')
    vars(target).update(state)


def _bytearray(unpickler, *args):
    if args == () or (len(args) == 1 and type(args[0]) is bytes):
        pass
    elif len(args) == 2 and type(args[0]) is str and type(args[1]) is str and \
            args[1] in ('latin-1', 'latin1'):
        args = (args[0].encode('latin-1'),)
    else:
        raise RefusedByAllowList(f'bytearray({", ".join(type(a).__name__ for a in args)})')
    unpickler.charge(_sized(args[0]) if args else 0)
    return bytearray(*args)


def _latin1_encode(unpickler, text, encoding='utf-8', errors='strict'):
    """``_codecs.encode`` as protocol-2 pickles use it: ``bytes`` written as latin-1 text."""
    if type(text) is not str or type(encoding) is not str or type(errors) is not str or \
            encoding not in ('latin1', 'latin-1') or errors != 'strict':
        raise RefusedByAllowList(f'_codecs.encode(<{type(text).__name__}>, {encoding!r})')
    unpickler.charge(len(text))
    return text.encode('latin-1')


def _complex(unpickler, *args):
    if len(args) > 2 or not all(type(a) in (int, float) for a in args):
        raise Damaged('complex() of something that is not a number')
    return complex(*args)


def _slice(unpickler, *args):
    if not 1 <= len(args) <= 3 or not all(a is None or type(a) is int for a in args):
        raise Damaged('slice() of something that is not an int')
    return slice(*args)


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``builtins.getattr`` as a checkpoint sees it: only HistoryBuffer's statistics methods.

    The real ``getattr`` would reach ``os.system`` from any allowed object
    (``getattr(getattr(np, 'os'), 'system')``), so anything else is refused.
    """
    from mmengine.logging import HistoryBuffer
    is_buffer = isinstance(obj, Builder) and obj.target is HistoryBuffer
    if is_buffer and name in HISTORY_BUFFER_METHODS:
        return vars(HistoryBuffer)[name]
    shown = 'HistoryBuffer' if is_buffer else type(obj).__name__
    raise RefusedByAllowList(f'getattr({shown}, {name!r})')


def _getattr(unpickler, *args):
    if len(args) != 2 or type(args[1]) is not str:
        raise RefusedByAllowList('getattr with other arguments than (object, name)')
    return history_buffer_getattr(*args)


# ------------------------------------------------------------------------------------- numpy

def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    return multiarray


def _check_numeric(dtype: Any, what: str) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_KINDS or \
            dtype.fields is not None or dtype.subdtype is not None:
        shown = dtype.str if isinstance(dtype, np.dtype) else describe(dtype)
        raise RefusedByAllowList(f'{what} of dtype {shown} '
                                 '(only numeric and bool dtypes are built)')
    return dtype


def _shape(shape: Any, what: str) -> Tuple[int, ...]:
    if type(shape) is not tuple or len(shape) > 32 or not all(
            type(n) is int and 0 <= n < (1 << 48) for n in shape):
        raise Damaged(f'{what} with an invalid shape')
    return shape


def _numpy_dtype(unpickler, spec, align=False, copy=True):
    """``numpy.dtype('f8', False, True)``, then its state once (byte order only)."""
    if type(spec) is not str or not _DTYPE_SPEC.match(spec) or type(align) is not bool or \
            type(copy) is not bool:
        shown = repr(spec[:16]) if type(spec) is str else describe(spec)
        raise RefusedByAllowList(f'numpy.dtype({shown}) (only numeric and bool dtypes)')
    built = np.dtype(spec, align, True)
    unpickler.expect_state(built, _dtype_state)
    return built


def _dtype_state(unpickler, target: np.dtype, state: Any) -> None:
    standard = target.__reduce__()[2]
    if type(state) is not tuple or len(state) != len(standard) or not all(
            type(given) is type(usual) and (index == 1 or given == usual)
            for index, (given, usual) in enumerate(zip(state, standard))) or \
            state[1] not in ('<', '>', '|', '='):
        raise RefusedByAllowList('setting a numpy dtype\'s state beyond its byte order')
    target.__setstate__(state)


def _reconstruct(unpickler, subtype, shape, code):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array whose state comes next."""
    if subtype is not np.ndarray:
        raise RefusedByAllowList(f'numpy _reconstruct of {describe(subtype)}')
    if type(shape) is not tuple or shape != (0,) or type(code) not in (bytes, str) or \
            code not in (b'b', 'b'):
        raise Damaged('numpy _reconstruct of something other than an empty array')
    built = np.empty((0,), np.int8)
    unpickler.expect_state(built, _array_state)
    return built


def _array_state(unpickler, target: np.ndarray, state: Any) -> None:
    """An array's state, set once: (1, shape, numeric dtype, fortran, raw bytes)."""
    if type(state) is not tuple or len(state) != 5 or type(state[0]) is not int or \
            state[0] != 1 or \
            type(state[3]) is not bool or type(state[4]) not in (bytes, str):
        raise Damaged('a numpy array with an invalid state')
    shape = _shape(state[1], 'a numpy array')
    dtype = _check_numeric(state[2], 'a numpy array')
    raw = state[4].encode('latin-1') if type(state[4]) is str else state[4]
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise Damaged(f'a numpy array of shape {shape} with {len(raw)} bytes of data')
    unpickler.charge(len(raw))
    target.__setstate__((1, shape, dtype, state[3], raw))


def _scalar(unpickler, dtype, data):
    dtype = _check_numeric(dtype, 'a numpy scalar')
    if type(data) is str:
        data = data.encode('latin-1')
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise Damaged('a numpy scalar with the wrong number of bytes')
    return _multiarray().scalar(dtype, data)


def _frombuffer(unpickler, buffer, dtype, shape, order):
    """Protocol 5's ``numpy._core.numeric._frombuffer``, from in-band bytes only."""
    if type(buffer) not in (bytes, bytearray) or type(order) is not str or \
            order not in ('C', 'F'):
        raise Damaged('a numpy array from something other than in-band bytes')
    dtype = _check_numeric(dtype, 'a numpy array')
    shape = _shape(shape, 'a numpy array')
    if len(buffer) != math.prod(shape) * dtype.itemsize:
        raise Damaged(f'a numpy array of shape {shape} with {len(buffer)} bytes of data')
    unpickler.charge(len(buffer))
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order).copy(order)


# ------------------------------------------------------------------------------------- torch

def _size(unpickler, *args):
    if len(args) != 1 or type(args[0]) not in (tuple, list) or len(args[0]) > 64 or not all(
            type(n) is int and n >= 0 for n in args[0]):
        raise Damaged('torch.Size of something other than non-negative ints')
    return torch.Size(args[0])


def _device(unpickler, *args):
    if not (1 <= len(args) <= 2 and type(args[0]) is str and
            re.match(r'(cpu|cuda|mps|xpu|hpu|meta)(:[0-9]{1,4})?\Z', args[0]) and
            (len(args) == 1 or type(args[1]) is int)):
        raise Damaged('torch.device of something other than a device name')
    return torch.device(*args)


def _tensor_builder(function: Callable) -> Callable:
    def build(unpickler, *args):
        return function(*args)
    return build


# -------------------------------------------------------------------------------- mmengine

def _history_buffer_new(unpickler, *args):
    from mmengine.logging import HistoryBuffer
    if args:
        raise Damaged('a HistoryBuffer created with arguments')
    built = HistoryBuffer.__new__(HistoryBuffer)
    unpickler.expect_state(built, _history_buffer_state)
    return built


def _history(values: Any) -> np.ndarray:
    if type(values) is list:
        if not all(type(v) in (int, float, bool) for v in values):
            raise Damaged('a HistoryBuffer holding something other than numbers')
        return np.array(values)
    if type(values) is np.ndarray and values.ndim == 1:
        _check_numeric(values.dtype, 'a HistoryBuffer')
        return values
    raise Damaged('a HistoryBuffer holding something other than a list or a 1-d array')


def _history_buffer_state(unpickler, target, state) -> None:
    """mmengine's own ``__setstate__``, given only numbers and the real statistics methods
    (it writes ``statistics_methods`` into the class, for every later buffer)."""
    from mmengine.logging import HistoryBuffer
    if type(state) is not dict or not set(state) <= _HISTORY_KEYS or \
            not {'_log_history', '_count_history'} <= set(state):
        raise RefusedByAllowList('setting the state of a HistoryBuffer with other attributes '
                                 'than its history')
    state = dict(state)
    state['_log_history'] = _history(state['_log_history'])
    state['_count_history'] = _history(state['_count_history'])
    if len(state['_log_history']) != len(state['_count_history']):
        raise Damaged('a HistoryBuffer whose values and counts differ in length')
    if type(state.get('max_length', 1)) is not int or state.get('max_length', 1) <= 0:
        raise Damaged('a HistoryBuffer with an invalid max_length')
    methods = state.get('statistics_methods', {})
    if type(methods) is not dict or any(
            name not in HISTORY_BUFFER_METHODS or method is not vars(HistoryBuffer)[name]
            for name, method in methods.items()):
        raise RefusedByAllowList('HistoryBuffer statistics methods other than its own')
    target.__setstate__(state)


# ---------------------------------------------------------------------------------- the list

def _numpy_entries() -> Dict[Tuple[str, str], Any]:
    entries: Dict[Tuple[str, str], Any] = {('numpy', 'ndarray'): np.ndarray,
                                           ('numpy', 'dtype'): Builder('numpy.dtype',
                                                                       _numpy_dtype)}
    for core in ('numpy.core', 'numpy._core'):
        entries[f'{core}.multiarray', '_reconstruct'] = Builder(
            f'{core}.multiarray._reconstruct', _reconstruct)
        entries[f'{core}.multiarray', 'scalar'] = Builder(f'{core}.multiarray.scalar', _scalar)
        entries[f'{core}.numeric', '_frombuffer'] = Builder(f'{core}.numeric._frombuffer',
                                                            _frombuffer)
    return entries


def _torch_entries() -> Dict[Tuple[str, str], Any]:
    entries: Dict[Tuple[str, str], Any] = {
        ('torch._utils', name): Builder(f'torch._utils.{name}', _tensor_builder(function))
        for name, function in REBUILD_FUNCTIONS.items()}
    entries['torch', 'device'] = Builder('torch.device', _device)
    entries['torch', 'Size'] = Builder('torch.Size', _size)
    for name, dtype in STORAGE_DTYPES.items():
        entries['torch', name] = StorageType(name, dtype)
    constant_types = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)
    for name, value in vars(torch).items():
        if isinstance(value, constant_types):
            entries['torch', name] = value
    return entries


def _python_entries() -> Dict[Tuple[str, str], Any]:
    from mmengine.logging import HistoryBuffer
    module = 'mmengine.logging.history_buffer'
    entries: Dict[Tuple[str, str], Any] = {
        ('collections', 'OrderedDict'): Builder('collections.OrderedDict', _ordered_dict),
        ('collections', 'Counter'): Builder('collections.Counter',
                                            _container(collections.Counter)),
        ('builtins', 'set'): Builder('builtins.set', _container(set)),
        ('builtins', 'frozenset'): Builder('builtins.frozenset', _container(frozenset)),
        ('builtins', 'complex'): Builder('builtins.complex', _complex),
        ('builtins', 'bytearray'): Builder('builtins.bytearray', _bytearray),
        ('builtins', 'slice'): Builder('builtins.slice', _slice),
        ('builtins', 'getattr'): Builder('builtins.getattr', _getattr),
        ('_codecs', 'encode'): Builder('_codecs.encode', _latin1_encode),
        (module, 'HistoryBuffer'): Builder('HistoryBuffer', new=_history_buffer_new,
                                           target=HistoryBuffer),
    }
    for name in HISTORY_BUFFER_METHODS:  # protocol >= 4 names nested functions directly
        entries[module, f'HistoryBuffer.{name}'] = vars(HistoryBuffer)[name]
    return entries


class AllowList:
    """The names a checkpoint may ask for, each resolved to a value or a :class:`Builder`."""

    def __init__(self) -> None:
        self.globals: Dict[Tuple[str, str], Any] = {
            **_python_entries(), **_numpy_entries(), **_torch_entries()}

    def find(self, module: str, name: str) -> Any:
        """The allowed value for ``module.name`` (Python 2 names mapped as pickle does)."""
        if type(module) is not str or type(name) is not str:
            raise RefusedByAllowList(f'{module!r}.{name!r}', exists=False)
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        try:
            return self.globals[module, name]
        except KeyError:
            raise RefusedByAllowList(f'{module}.{name}', global_exists(module, name)) from None


def describe(obj: Any) -> str:
    """A short name for an object a pickle asked to call or change (our objects only)."""
    if isinstance(obj, Builder):
        return obj.name
    if isinstance(obj, type):
        return f'{obj.__module__}.{obj.__qualname__}'
    if callable(obj) and hasattr(obj, '__qualname__'):
        return f'{getattr(obj, "__module__", "")}.{obj.__qualname__}'.lstrip('.')
    return f'a {type(obj).__qualname__} object'


@functools.lru_cache(maxsize=None)
def default_allow_list() -> AllowList:
    """The allow-list, built once per process (after numpy, torch and mmengine import)."""
    return AllowList()
