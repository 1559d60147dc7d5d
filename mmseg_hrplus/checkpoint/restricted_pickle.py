"""The unpickler every checkpoint pickle goes through: it builds data, it never dispatches.

Built on Python's pure-Python unpickler, with every opcode that can reach code replaced:

* ``GLOBAL``/``STACK_GLOBAL``: only names of :class:`~.allow_list.AllowList`, resolved to a
  constant or to one of our checked :class:`~.allow_list.Builder` s; nothing is imported;
* ``REDUCE``, ``NEWOBJ``/``NEWOBJ_EX``: only on a builder, which checks its arguments;
  ``OBJ``/``INST`` (protocols 0 and 1 instance creation) and ``EXT1/2/4`` (the copyreg
  registry) are refused;
* ``BUILD``: only on an object a builder made and marked as expecting its state, once;
* ``APPEND(S)``, ``SETITEM(S)``, ``ADDITEMS``: only on plain lists, dicts and sets (the pure
  unpickler would call ``append``, ``__setitem__`` or ``add`` of whatever is on the stack);
* ``PERSID``/``BINPERSID``: handed to the caller's ``persistent_load`` (the storages of a torch
  archive); ``READONLY_BUFFER`` only on bytes.

Every builder that allocates charges a budget proportional to the pickle's size, so a small
file cannot ask for gigabytes by building the same large value over and over.
"""
import io
import pickle
import struct
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple

from .allow_list import Builder, default_allow_list, describe
from .errors import Refused, RefusedByAllowList

__all__ = ['Unpickler', 'load', 'loads', 'UnpicklingError']

UnpicklingError = pickle.UnpicklingError

#: What a pickle may allocate through builders: this many bytes plus 4x its own size.
BASE_BUDGET = 64 << 20

_LISTS = (list,)
_DICTS = (dict, OrderedDict, Counter)
_SETS = (set,)


class Unpickler(pickle._Unpickler):
    """The pure-Python unpickler with every code-reaching opcode checked (see the module doc).

    Args:
        file: a binary file positioned at the pickle.
        persistent_load: ``pid -> object`` for torch's storage references; without it a
            persistent id is damage.
        size_hint: the pickle's size in bytes (sets the allocation budget).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, persistent_load: Optional[Callable[[Any], Any]] = None,
                 size_hint: int = 0) -> None:
        super().__init__(file, encoding='latin1')
        self.allow = default_allow_list()
        self._persistent = persistent_load
        self._budget = BASE_BUDGET + 4 * max(size_hint, 0)
        self._size_hint = size_hint
        self._expecting: Dict[int, Tuple[Any, Callable]] = {}

    # -- what builders use
    def charge(self, nbytes: int) -> None:
        """Count ``nbytes`` against the budget; refuse once it is spent."""
        self._budget -= nbytes
        if self._budget < 0:
            raise Refused('the pickle asks for more memory than its size can justify')

    def expect_state(self, obj: Any, handler: Callable) -> None:
        """``obj`` may receive one ``BUILD``, which ``handler(self, obj, state)`` applies."""
        self._expecting[id(obj)] = (obj, handler)

    # -- names
    def find_class(self, module: str, name: str) -> Any:
        return self.allow.find(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnpicklingError('a persistent id outside a torch archive')
        return self._persistent(pid)

    # -- code-reaching opcodes
    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(func, Builder) or func.call is None:
            raise RefusedByAllowList(f'a call of {describe(func)}')
        if type(args) is not tuple:
            raise UnpicklingError('REDUCE arguments are not a tuple')
        self.stack[-1] = func.call(self, *args)

    def _new(self, cls: Any, args: Any, kwargs: Any) -> None:
        if not isinstance(cls, Builder) or cls.new is None:
            raise RefusedByAllowList(f'a new {describe(cls)}')
        if type(args) is not tuple or kwargs:
            raise UnpicklingError('NEWOBJ arguments are not a tuple')
        self.append(cls.new(self, *args))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, None)

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, kwargs)

    def _instantiate(self, klass, args) -> None:  # OBJ and INST (protocols 0 and 1)
        raise RefusedByAllowList(f'a new {describe(klass)} (protocol 0/1 instance)')

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        expected = self._expecting.pop(id(inst), None)
        if expected is None or expected[0] is not inst:
            raise RefusedByAllowList(f'setting the state of {describe(inst)}')
        expected[1](self, inst, state)

    def get_extension(self, code: int) -> None:
        import copyreg
        # An unregistered code names nothing that could run: a damaged file, not a request.
        raise RefusedByAllowList(f'copyreg extension code {code}',
                                 exists=code in copyreg._inverted_registry)

    # -- container opcodes: plain containers only
    def _target(self, kinds: tuple, opcode: str) -> Any:
        target = self.stack[-1]
        if type(target) not in kinds:
            raise RefusedByAllowList(f'{opcode} on {describe(target)}')
        return target

    def load_append(self) -> None:
        value = self.stack.pop()
        self._target(_LISTS, 'APPEND').append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._target(_LISTS, 'APPENDS').extend(items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._target(_DICTS, 'SETITEM')[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target(_DICTS, 'SETITEMS')
        if len(items) % 2:
            raise UnpicklingError('SETITEMS with an odd number of items')
        for index in range(0, len(items), 2):
            target[items[index]] = items[index + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        self._target(_SETS, 'ADDITEMS').update(items)

    def load_bytearray8(self) -> None:
        # The pure unpickler allocates the declared length before reading: a few bytes could
        # ask for gigabytes. Nothing longer than the pickle itself can follow.
        length, = struct.unpack('<Q', self.read(8))
        if length > self._size_hint:
            raise UnpicklingError('pickle data was truncated (a bytearray longer than the '
                                  'pickle)')
        self.charge(length)
        data = self.read(length)
        if len(data) != length:
            raise UnpicklingError('pickle data was truncated')
        self.append(bytearray(data))

    def load_readonly_buffer(self) -> None:
        if type(self.stack[-1]) not in (bytes, bytearray):
            raise RefusedByAllowList(f'READONLY_BUFFER on {describe(self.stack[-1])}')
        if type(self.stack[-1]) is bytearray:
            self.stack[-1] = bytes(self.stack[-1])

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.READONLY_BUFFER[0]] = load_readonly_buffer
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def load(file, persistent_load: Optional[Callable[[Any], Any]] = None,
         size_hint: int = 0) -> Any:
    """``pickle.load`` with :class:`Unpickler`."""
    return Unpickler(file, persistent_load, size_hint).load()


def loads(data: bytes, persistent_load: Optional[Callable[[Any], Any]] = None) -> Any:
    """``pickle.loads`` with :class:`Unpickler`."""
    return load(io.BytesIO(data), persistent_load, len(data))
