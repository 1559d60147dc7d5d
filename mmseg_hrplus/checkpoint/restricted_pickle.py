"""A pickle module for ``torch.load(..., pickle_module=restricted_pickle, weights_only=False)``.

``torch.load`` uses only two things of its ``pickle_module``: ``Unpickler`` (which it subclasses
to resolve storage classes and to read tensor data) and ``load`` (legacy-format headers). This
module gives both, built on the pure-Python unpickler so that every opcode that can reach code
goes through :class:`~.allow_list.AllowList`:

* ``GLOBAL``/``STACK_GLOBAL`` (via ``find_class``): only allow-listed names; nothing is imported;
* ``REDUCE`` (a call), ``NEWOBJ``/``NEWOBJ_EX``/``OBJ``/``INST`` (a new instance): only on
  allow-listed objects, by identity;
* ``BUILD`` (``__setstate__`` or attribute updates): only on allow-listed container types;
* ``EXT1/2/4`` (the copyreg extension registry): refused.

The pure-Python unpickler is slower than the C one, but a checkpoint's pickle holds only the
structure (tensor data is read from the file directly), so a W48 training checkpoint with its
optimizer state unpickles in milliseconds.
"""
import copyreg
import io
import pickle
from typing import Any

from .allow_list import default_allow_list
from .errors import RefusedByAllowList

__all__ = ['Unpickler', 'load', 'loads', 'UnpicklingError']

UnpicklingError = pickle.UnpicklingError


class Unpickler(pickle._Unpickler):
    """The pure-Python unpickler, with every code-reaching opcode checked against the
    allow-list. Refusals raise :class:`~.errors.RefusedByAllowList` before anything runs."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.allow = default_allow_list()

    def find_class(self, module: str, name: str) -> Any:
        return self.allow.find(module, name)

    def load_reduce(self) -> None:
        func = self.stack[-2]
        self.allow.check_call(func)
        super().load_reduce()

    def load_newobj(self) -> None:
        self.allow.check_new(self.stack[-2])
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        self.allow.check_new(self.stack[-3])
        super().load_newobj_ex()

    def _instantiate(self, klass, args) -> None:  # OBJ and INST (protocols 0 and 1)
        self.allow.check_new(klass)
        super()._instantiate(klass, args)

    def load_build(self) -> None:
        self.allow.check_build(self.stack[-2], self.stack[-1])
        super().load_build()

    def get_extension(self, code: int) -> None:
        # An unregistered code names nothing that could run: a damaged file, not a request.
        raise RefusedByAllowList(f'copyreg extension code {code}',
                                 exists=code in copyreg._inverted_registry)

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build


def load(file, **kwargs) -> Any:
    """``pickle.load`` with :class:`Unpickler`."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs) -> Any:
    """``pickle.loads`` with :class:`Unpickler`."""
    return load(io.BytesIO(data), **kwargs)
