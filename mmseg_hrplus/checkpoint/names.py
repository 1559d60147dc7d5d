"""Whether a global a file asked for names something real, decided without running any code.

The answer only words the error: a real name (``posix.system``) is an attack refused, a name
that exists nowhere (``torch._utils._rebui``, a file cut inside a name) is damage. Finding out
must not do what the file wanted: ``import`` runs a module's code, and even ``hasattr`` runs a
module's lazy ``__getattr__`` (``torch._inductor`` imports some 200 modules on first touch).
So names are looked up only in the ``__dict__`` of modules already imported, and modules not
yet imported only by their location on disk (``importlib``'s path finder reads directories; it
imports nothing). Where the lookup cannot tell, the name counts as real: an unknown request is
reported as refused, never as harmless.
"""
import importlib.machinery
import re
import sys
import types
from typing import Any, Optional

_DOTTED = re.compile(r'[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z')

#: Modules of other platforms that pickles name to run code (``nt.system`` is ``os.system``
#: written on Windows): real, though this machine cannot import them.
OTHER_PLATFORM_MODULES = frozenset({
    'nt', 'posix', '_winapi', 'msvcrt', 'winreg', '_winreg', '_posixsubprocess', 'winsound',
    '_overlapped', '_msi', 'pwd', 'grp', 'termios', 'fcntl', 'resource', 'posixpath', 'ntpath'})


def _module_spec_exists(module: str) -> bool:
    """Whether ``module`` can be found on disk, walking down from the deepest imported
    package with the path finder (which imports nothing)."""
    parts = module.split('.')
    path: Optional[list] = None
    for depth in range(len(parts), 0, -1):
        parent = sys.modules.get('.'.join(parts[:depth]))
        if parent is not None:
            if depth == len(parts):
                return True
            path = list(getattr(parent, '__path__', None) or []) if isinstance(
                parent, types.ModuleType) and '__path__' in vars(parent) else None
            if path is None:
                return False
            start = depth
            break
    else:
        start = 0
        if parts[0] in sys.builtin_module_names:
            return len(parts) == 1
    for depth in range(start, len(parts)):
        try:
            spec = importlib.machinery.PathFinder.find_spec('.'.join(parts[:depth + 1]), path)
        except (ImportError, ValueError, OSError):
            return False
        if spec is None:
            return False
        path = list(spec.submodule_search_locations or [])
        if depth + 1 < len(parts) and not path:
            return False
    return True


def _static_member(owner: Any, name: str) -> Any:
    """``owner.name`` looked up in ``__dict__``s only (a module's, or a class's MRO); a
    sentinel when absent. Nothing the owner defines is called."""
    if isinstance(owner, types.ModuleType):
        namespace = vars(owner)
        if name in namespace:
            return namespace[name]
        # a lazy module (__getattr__ in its namespace) or a module of its own class (torch's
        # config modules) may answer names its namespace lacks: cannot tell, so real
        lazy = '__getattr__' in namespace or type(owner) is not types.ModuleType
        return _UNKNOWN if lazy else _ABSENT
    if isinstance(owner, type):
        for klass in type.__dict__['__mro__'].__get__(owner):
            namespace = type.__dict__['__dict__'].__get__(klass)
            if name in namespace:
                return namespace[name]
        return _ABSENT
    return _UNKNOWN


_ABSENT = object()
_UNKNOWN = object()


def global_exists(module: Any, name: Any) -> bool:
    """Whether ``module.name`` (``name`` may be dotted, as protocol 4 writes nested names)
    names something real. Imports nothing, calls nothing the named objects define."""
    if not isinstance(module, str) or not isinstance(name, str):
        return False
    if not _DOTTED.match(module) or not _DOTTED.match(name):
        return False
    top = module.split('.')[0]
    if top in OTHER_PLATFORM_MODULES:
        return True
    owner = sys.modules.get(module)
    if owner is None:
        return _module_spec_exists(module)
    for part in name.split('.'):
        member = _static_member(owner, part)
        if member is _UNKNOWN:
            return True
        if member is _ABSENT:
            # a submodule that is not imported yet: torch.fx named as (torch, fx)
            return isinstance(owner, types.ModuleType) and _module_spec_exists(
                f'{owner.__name__}.{part}')
        owner = member
    return True
