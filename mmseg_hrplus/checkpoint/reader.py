"""Read a checkpoint file without running code from it, on every torch from 2.1 on.

Every read goes through ``torch.load(..., pickle_module=restricted_pickle,
weights_only=False)``: torch still parses the file format (zip or legacy, storages, mapping to a
device), and every object the pickle asks for is checked by :mod:`.restricted_pickle`. Torch's
``weights_only=True`` is not used because its allow-list is extended only through
``add_safe_globals`` (torch >= 2.4); torch 2.1, the stack of OpenMMLab's prebuilt mmcv wheels,
refuses every mmengine checkpoint with it, and loads anything without it.
"""
import io
import os
import os.path as osp
import pickle
import struct
import threading
import zipfile
from typing import IO, Any, Callable, Optional, Union

import torch

from . import restricted_pickle
from .errors import CheckpointError, RefusedByAllowList, UnsafeCheckpointError

MapLocation = Union[None, str, torch.device, Callable, dict]

# The name of the checkpoint this thread read last, for errors raised after reading (a strict
# load that does not fit: see .mismatch).
_LAST_READ = threading.local()


def last_checkpoint_name() -> Optional[str]:
    """How the checkpoint this thread read last was named (path, or URL and cached path)."""
    return getattr(_LAST_READ, 'name', None)

# Words of torch's RuntimeErrors for a torn file (zip reader, legacy storage reader).
_DAMAGE_MARKERS = ('PytorchStreamReader', 'zip archive', 'central directory', 'invalid header',
                   'unexpected EOF', 'might be corrupted', 'Invalid magic number',
                   'Invalid protocol version', 'file too short', 'storage key')
# What the unpickler raises on garbage besides its own error: an opcode may pop an empty stack
# or index past a memo (IndexError), or read a bad length or value.
_GARBAGE_ERRORS = (EOFError, pickle.UnpicklingError, KeyError, UnicodeDecodeError, IndexError,
                   ValueError, OverflowError, struct.error, AttributeError, TypeError)


def _printable(text: str, limit: int = 60) -> str:
    """A name read from a damaged file, quoted, one line, at most ``limit`` characters."""
    shown = repr(text[:limit])
    return shown + ('...' if len(text) > limit else '')


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip()[:512].lower()
    return text.startswith(b'<') and (b'<html' in text or b'<!doctype' in text)


def _is_torchscript_archive(source: Union[str, IO[bytes]]) -> bool:
    try:
        with zipfile.ZipFile(source) as archive:
            return any(n.endswith('/constants.pkl') or n == 'constants.pkl'
                       for n in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    finally:
        if not isinstance(source, str):
            source.seek(0)


def explain_load_error(name: str, err: BaseException, head: bytes = b'',
                       size: Optional[int] = None) -> CheckpointError:
    """The one-line error for what ``torch.load`` raised while reading ``name``.

    Args:
        name: how the file is named to the user (path, or URL and cached path).
        err: the exception.
        head: the file's first bytes, to recognise an HTML page.
        size: the file's size in bytes, if known.
    """
    sized = f'{name} ({size} bytes)' if size is not None else name
    if isinstance(err, RefusedByAllowList) and err.exists:
        return UnsafeCheckpointError(
            f'refused checkpoint {name}: the file asks for `{err.request}`, which is outside '
            'the allow-list; nothing was executed (load only files you trust)')
    if isinstance(err, RefusedByAllowList):
        return CheckpointError(
            f'cannot read checkpoint {sized}: truncated, corrupted or not a PyTorch checkpoint '
            f'(unpickling stopped at an unknown global {_printable(err.request)})')
    if size == 0:
        return CheckpointError(f'cannot read checkpoint {name}: the file is empty (0 bytes)')
    if _looks_like_html(head):
        return CheckpointError(
            f'cannot read checkpoint {sized}: it is an HTML page, not a PyTorch checkpoint (an '
            'error or login page saved in place of the file?)')
    message = str(err)
    if isinstance(err, _GARBAGE_ERRORS) or (
            isinstance(err, RuntimeError) and any(m in message for m in _DAMAGE_MARKERS)):
        first = message.split('. ')[0].strip().splitlines()[0] if message.strip() else \
            'the data ends too early'
        return CheckpointError(
            f'cannot read checkpoint {sized}: truncated, corrupted or not a PyTorch checkpoint '
            f'({type(err).__name__}: {first})')
    # Not recognisably damaged (e.g. a CUDA checkpoint without map_location on a CPU-only
    # machine): keep torch's words, add the file name.
    return CheckpointError(f'cannot read checkpoint {name}: {type(err).__name__}: '
                           f'{" ".join(message.split())}')


def read_checkpoint(source: Union[str, os.PathLike, IO[bytes]],
                    map_location: MapLocation = None, name: Optional[str] = None) -> Any:
    """Load a checkpoint with the restricted unpickler; errors name the file.

    Args:
        source: a local path (``~`` is expanded) or a binary file object.
        map_location: as for ``torch.load``.
        name: how to name the file in errors (default: the path).

    Returns:
        What the file holds: for mmengine checkpoints a dict with ``state_dict``, ``meta``,
        ``optimizer``, ``message_hub``...; for most released weights a state dict.

    Raises:
        FileNotFoundError: ``source`` is a path that is not a file.
        UnsafeCheckpointError: the file asks for something outside the allow-list (or is a
            TorchScript archive, which holds code); nothing was executed.
        CheckpointError: the file is empty, truncated, corrupted, an HTML page, or not a
            checkpoint; or torch could not place it (e.g. CUDA tensors on a CPU machine).
    """
    if isinstance(source, (str, os.PathLike)):
        path = osp.expanduser(os.fspath(source))
        if not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint not found: {path}')
        name = name or path
        size = osp.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(1024)
    else:
        path = source
        name = name or getattr(source, 'name', '<file object>')
        position = source.tell()
        head = source.read(1024)
        size = source.seek(0, io.SEEK_END) - position
        source.seek(position)
    _LAST_READ.name = name
    if _is_torchscript_archive(path):
        raise UnsafeCheckpointError(
            f'refused checkpoint {name}: it is a TorchScript archive, which holds code, not a '
            'checkpoint; nothing was executed (open it with torch.jit.load if you trust it)')
    try:
        return torch.load(path, map_location=map_location, pickle_module=restricted_pickle,
                          weights_only=False)
    except (KeyboardInterrupt, MemoryError, PermissionError, IsADirectoryError):
        raise
    except Exception as err:  # noqa: BLE001  every failure of torch.load is explained below
        explained = explain_load_error(name, err, head, size)
    # Raised outside the except block: the one-line message is the whole story.
    raise explained
