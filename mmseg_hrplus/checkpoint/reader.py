"""Read a checkpoint file by parsing it, never by dispatching it to code, on torch 2.1 and up.

The file's first bytes decide its format, and each format has its own parser:

* a zip archive (torch >= 1.6): :mod:`.zip_archive` (records checked with torch's own reader
  and a strict one), then :func:`.torch_format.read_zip`;
* the legacy stream of pickles (torch 0.4 to 1.5): :func:`.torch_format.read_legacy`;
* safetensors: :mod:`.safetensors_format`;
* anything else, tar (torch < 0.1.10) included, is refused with a one-line reason.

Every pickle goes through :mod:`.restricted_pickle`. ``torch.load`` is never called on the
file: it would hand a TorchScript archive to ``torch.jit.load`` and a tar file to ``tarfile``
extraction, and on torch 2.1 it trusts a storage's declared size.
"""
import io
import os
import os.path as osp
import pickle
import struct
import threading
from typing import IO, Any, Optional, Union

from .errors import (CheckpointError, Damaged, Refused, RefusedByAllowList,
                     UnsafeCheckpointError)
from .safetensors_format import looks_like_safetensors, read_safetensors
from .tensors import MapLocation
from .torch_format import LEGACY_MAGIC_PREFIX, PlacementError, read_legacy, read_zip
from .zip_archive import is_zip, open_torch_archive

# The name of the checkpoint this thread read last, for errors raised after reading (a strict
# load that does not fit: see .mismatch).
_LAST_READ = threading.local()

# What the unpickler raises on garbage besides its own errors: an opcode may pop an empty
# stack or index past a memo (IndexError), read a bad length or value, or call a builder with
# the wrong number of arguments (TypeError).
_GARBAGE_ERRORS = (EOFError, pickle.UnpicklingError, KeyError, UnicodeDecodeError, IndexError,
                   ValueError, OverflowError, struct.error, AttributeError, TypeError,
                   RecursionError)


def last_checkpoint_name() -> Optional[str]:
    """How the checkpoint this thread read last was named (path, or URL and cached path)."""
    return getattr(_LAST_READ, 'name', None)


def _printable(text: str, limit: int = 60) -> str:
    """A name read from a damaged file, quoted, one line, at most ``limit`` characters."""
    shown = repr(text[:limit])
    return shown + ('...' if len(text) > limit else '')


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip()[:512].lower()
    return text.startswith(b'<') and (b'<html' in text or b'<!doctype' in text)


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b'ustar'


def _one_line(text: str, limit: int = 200) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit] + '...'


def explain_load_error(name: str, err: BaseException, head: bytes = b'',
                       size: Optional[int] = None) -> CheckpointError:
    """The one-line error for what reading ``name`` raised.

    Args:
        name: how the file is named to the user (path, or URL and cached path).
        err: the exception.
        head: the file's first bytes, to recognise an HTML page.
        size: the file's size in bytes, if known.
    """
    sized = f'{name} ({size} bytes)' if size is not None else name
    damaged = f'cannot read checkpoint {sized}: truncated, corrupted or not a PyTorch checkpoint'
    if isinstance(err, RefusedByAllowList) and err.exists:
        return UnsafeCheckpointError(
            f'refused checkpoint {name}: the file asks for `{_one_line(err.request)}`, which is '
            'outside '
            'the allow-list; nothing was executed (load only files you trust)')
    if isinstance(err, RefusedByAllowList):
        return CheckpointError(
            f'{damaged} (unpickling stopped at an unknown global {_printable(err.request)})')
    if isinstance(err, Refused):
        return UnsafeCheckpointError(f'refused checkpoint {name}: {_one_line(err.reason)}; '
                                     'nothing was '
                                     'executed (load only files you trust)')
    if size == 0:
        return CheckpointError(f'cannot read checkpoint {name}: the file is empty (0 bytes)')
    if _looks_like_html(head):
        return CheckpointError(
            f'cannot read checkpoint {sized}: it is an HTML page, not a PyTorch checkpoint (an '
            'error or login page saved in place of the file?)')
    if isinstance(err, Damaged):
        return CheckpointError(f'{damaged} ({_one_line(err.reason)})')
    if isinstance(err, PlacementError):
        return CheckpointError(f'cannot read checkpoint {name}: {_one_line(str(err), 300)}')
    if isinstance(err, MemoryError):
        return CheckpointError(f'cannot read checkpoint {sized}: out of memory while reading it')
    if isinstance(err, _GARBAGE_ERRORS):
        message = str(err).strip()
        first = _one_line(message.split('. ')[0].splitlines()[0]) if message else \
            'the data ends too early'
        return CheckpointError(f'{damaged} ({type(err).__name__}: {first})')
    return CheckpointError(f'cannot read checkpoint {name}: {type(err).__name__}: '
                           f'{_one_line(str(err), 300)}')


def _parse(file: IO[bytes], size: int, head: bytes, map_location: MapLocation) -> Any:
    if size == 0:
        raise Damaged('the file is empty')
    if is_zip(head):
        return read_zip(open_torch_archive(file), map_location)
    if head.startswith(LEGACY_MAGIC_PREFIX):
        return read_legacy(file, size, map_location)
    if looks_like_safetensors(head, size):
        return read_safetensors(file, size, map_location)
    if _is_tar(head):
        raise Refused('it is a tar archive (the format of torch < 0.1.10), which this reader '
                      'does not unpack')
    if head[:1] == b'\x80':
        # a pickle, but not torch's legacy format: read it as one (it may still name code)
        return read_legacy(file, size, map_location)
    raise Damaged('no zip archive, no legacy torch pickle, no safetensors header')


def read_checkpoint(source: Union[str, os.PathLike, IO[bytes]],
                    map_location: MapLocation = None, name: Optional[str] = None) -> Any:
    """Read a checkpoint without running code from it; errors name the file in one line.

    Args:
        source: a local path (``~`` is expanded) or a seekable binary file object.
        map_location: as for ``torch.load`` (None, a device, a ``{from: to}`` dict or a
            callable ``(storage, location) -> storage``).
        name: how to name the file in errors (default: the path).

    Returns:
        What the file holds: for mmengine checkpoints a dict with ``state_dict``, ``meta``,
        ``optimizer``, ``message_hub``...; for most released weights a state dict; for a
        safetensors file a state dict, or ``{'state_dict', 'meta'}`` if written with meta.

    Raises:
        FileNotFoundError: ``source`` is a path that is not a file.
        UnsafeCheckpointError: the file asks for something outside the allow-list, or holds
            what a checkpoint of weights does not (TorchScript code, a pickled module, a tar
            archive, compressed records); nothing was executed.
        CheckpointError: the file is empty, truncated, corrupted, an HTML page, or not a
            checkpoint; or torch could not place it (e.g. CUDA tensors on a CPU machine).
    """
    opened = None
    if isinstance(source, (str, os.PathLike)):
        path = osp.expanduser(os.fspath(source))
        if not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint not found: {path}')
        name = name or path
        opened = file = open(path, 'rb')
    else:
        file = source
        name = name or getattr(source, 'name', '<file object>')
        if file.tell() != 0:  # a file object positioned inside a larger stream
            file = io.BytesIO(file.read())
    _LAST_READ.name = name
    try:
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        head = file.read(1024)
        try:
            return _parse(file, size, head, map_location)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # noqa: BLE001  every failure is explained below
            explained = explain_load_error(name, err, head, size)
        # Raised outside the except block: the one-line message is the whole story.
        raise explained
    finally:
        if opened is not None:
            opened.close()
