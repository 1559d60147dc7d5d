"""Checkpoint reading that names the file when it fails; active on ``import mmseg_hrplus``.

Every local checkpoint mmengine reads goes through the loader registered for the empty prefix
of :class:`mmengine.runner.CheckpointLoader`: ``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained')``, :func:`mmengine.runner.load_checkpoint`, mmseg's
``init_model`` and our converters. :func:`load_from_local` takes its place. It differs from
mmengine's in two ways:

* it passes ``weights_only=True`` to ``torch.load`` explicitly, so a pickle that would run
  code is refused on every torch version, not only where that is the default (torch >= 2.6);
  the globals an mmengine checkpoint needs are allow-listed by :mod:`mmseg_hrplus.compat`;
* a file that cannot be read raises an error whose message names the file and says why, in one
  line, instead of an unpickling trace that tells the user to retry with ``weights_only=False``:

  - :class:`UnsafeCheckpointError` (also a ``pickle.UnpicklingError``): the file asks for a
    global outside the allow-list, e.g. ``posix.system``; nothing from it was executed;
  - :class:`CheckpointError` (a ``ValueError``): empty, truncated, corrupted, or not a
    PyTorch checkpoint at all.
"""
import _compat_pickle
import importlib.util
import os
import os.path as osp
import pickle
import re
import struct
import sys
from typing import Any, Callable, Tuple, Union

import torch
from mmengine.runner.checkpoint import CheckpointLoader

MapLocation = Union[None, str, torch.device, Callable, dict]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names the file."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint whose pickle asks for something outside the allow-list (it could run code).

    Subclasses ``pickle.UnpicklingError`` too, which is what ``torch.load`` itself raises for
    such a file, so existing ``except pickle.UnpicklingError`` handlers keep working.
    """


# How torch's weights-only unpickler names a refused global, across torch 2.4 - 2.13:
# "Unsupported global: GLOBAL posix.system was not an allowed global by default" and
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked".
_GLOBAL_RE = re.compile(r'GLOBAL ([\w.]+)')
# Other refusals of the weights-only unpickler that mean "asks to call or build something not
# allowed", and the refusal of compat's guarded getattr.
_REFUSAL_MARKERS = ('Trying to call reduce', 'Can only create new object',
                    'Can only build Tensor', 'checkpoint asks for')
# Words of torch's RuntimeErrors for a torn file (zip reader, legacy storage reader).
_DAMAGE_MARKERS = ('PytorchStreamReader', 'zip archive', 'central directory', 'invalid header',
                   'unexpected EOF', 'might be corrupted')


def _resolve_global(qualified_name: str) -> Tuple[str, bool]:
    """The Python 3 name of a global as torch prints it, and whether it exists.

    A truncated legacy checkpoint can end inside a global's name ("torch._utils._rebui"): such
    a torn name is corruption, not a request to run code. Nothing is imported here, because
    importing a module named by an untrusted file runs that module's code: a name counts as
    existing if its module is imported and has the attribute, or if the module is not imported
    but can be found on the path.
    """
    module, _, name = qualified_name.rpartition('.')
    module = module or 'builtins'  # torch prints builtins bare: "GLOBAL eval"
    # torch.save pickles with protocol 2, which writes Python 2 names (subprocess.Popen is
    # written as commands.Popen); map them back as the unpickler does.
    module, name = _compat_pickle.NAME_MAPPING.get(
        (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
    full = f'{module}.{name}'
    if module in sys.modules:
        obj = sys.modules[module]
        for attr in name.split('.'):
            if not hasattr(obj, attr):
                return full, False
            obj = getattr(obj, attr)
        return full, True
    # Not imported: it exists if its top-level package can be found (a top-level find_spec
    # imports nothing); erring this way calls a real but unusual global unsafe, never safe.
    top = module.split('.')[0]
    return full, top in sys.modules or importlib.util.find_spec(top) is not None


def _weights_only_detail(message: str) -> str:
    """The one informative line of torch's long weights-only refusal message."""
    for line in message.splitlines():
        line = line.strip()
        if 'WeightsUnpickler error:' in line:
            line = line.split('WeightsUnpickler error:', 1)[1].strip()
            if line:
                return line
        elif line.startswith('Trying to') or line.startswith('Unsupported'):
            return line
        elif 'checkpoint asks for' in line:  # compat's guarded getattr
            return line
    # "WeightsUnpickler error:" may stand alone with the reason on a later line.
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith('WeightsUnpickler error:') and i + 1 < len(lines):
            return lines[i + 1]
    return lines[0] if lines else ''


def explain_load_error(path: str, err: BaseException) -> CheckpointError:
    """Turn what ``torch.load(path, weights_only=True)`` raised into an error naming ``path``."""
    size = osp.getsize(path) if osp.isfile(path) else 0
    message = str(err)
    if isinstance(err, pickle.UnpicklingError) and 'Weights only load failed' in message:
        detail = _weights_only_detail(message)
        named = _GLOBAL_RE.search(detail)
        name, exists = _resolve_global(named.group(1)) if named else ('', False)
        if exists or any(marker in detail for marker in _REFUSAL_MARKERS):
            what = f'unsupported global {name}' if named else detail
            return UnsafeCheckpointError(
                f'refused checkpoint {path}: the file asks to run code or to build an object '
                f'outside the allow-list ({what}); nothing from it was executed. Load only '
                'files you trust; if this one is trusted and holds a new kind of object, '
                'allow-list that object with torch.serialization.add_safe_globals')
        if named is not None:  # a torn or unknown name: nothing that could run exists
            detail = f'unknown global {name}'
        return CheckpointError(
            f'cannot read checkpoint {path} ({size} bytes): truncated, corrupted or not a '
            f'PyTorch checkpoint (unpickling stopped at: {detail})')
    if size == 0:
        return CheckpointError(f'cannot read checkpoint {path}: the file is empty (0 bytes)')
    # What the unpickler raises on garbage: besides its own error, an opcode may pop an empty
    # stack or index past a memo (IndexError), or read a bad length or value.
    if isinstance(err, (EOFError, pickle.UnpicklingError, KeyError, UnicodeDecodeError,
                        IndexError, ValueError, OverflowError, struct.error)) or (
            isinstance(err, RuntimeError) and any(m in message for m in _DAMAGE_MARKERS)):
        first = message.split('. ')[0].strip() or 'the data ends too early'
        return CheckpointError(
            f'cannot read checkpoint {path} ({size} bytes): truncated, corrupted or not a '
            f'PyTorch checkpoint ({type(err).__name__}: {first})')
    # Not recognisably a damaged file (e.g. a CUDA checkpoint without map_location on a CPU
    # machine): keep torch's words, add the file name.
    return CheckpointError(f'cannot read checkpoint {path}: {type(err).__name__}: {message}')


def read_checkpoint(path: str, map_location: MapLocation = None) -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name ``path``.

    Args:
        path: local file; ``~`` is expanded.
        map_location: as for ``torch.load``.

    Returns:
        Whatever the file holds (for mmengine checkpoints a dict with ``state_dict``,
        ``meta``, ``optimizer``, ``message_hub``, ...).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        UnsafeCheckpointError: the file asks for a global outside the allow-list.
        CheckpointError: the file is empty, truncated, corrupted or not a checkpoint.
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (KeyboardInterrupt, MemoryError, PermissionError, IsADirectoryError):
        raise
    except Exception as err:  # noqa: BLE001  every failure of torch.load is explained below
        explained = explain_load_error(path, err)
    # Raised outside the except block: the message is the whole story, torch's trace (which
    # suggests weights_only=False) is left out.
    raise explained


def load_from_local(filename: str, map_location: MapLocation = None) -> Any:
    """mmengine's local-file checkpoint loader, replaced by :func:`read_checkpoint`.

    The name matters: ``CheckpointLoader`` logs ``name[10:]`` ('local') as the backend.
    """
    return read_checkpoint(filename, map_location)


def register_checkpoint_loader() -> None:
    """Make :func:`load_from_local` mmengine's loader for local paths (the empty prefix)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def checkpoint_loader_is_ours() -> bool:
    """Whether local checkpoints currently go through :func:`load_from_local`."""
    return CheckpointLoader._get_checkpoint_loader(os.sep + 'x.pth') is load_from_local


register_checkpoint_loader()

__all__ = ['CheckpointError', 'UnsafeCheckpointError', 'checkpoint_loader_is_ours',
           'explain_load_error', 'load_from_local', 'read_checkpoint',
           'register_checkpoint_loader']
