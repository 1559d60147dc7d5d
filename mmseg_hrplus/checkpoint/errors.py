"""The errors a checkpoint read can end with; each message names the file (and URL) in one line.

Public errors (what callers catch): :class:`CheckpointError` and its subclasses. The parsers
below the reader raise the internal :class:`Damaged` and :class:`Refused` with a reason only;
:func:`mmseg_hrplus.checkpoint.read_checkpoint` adds the file's name and turns them into the
public errors, so every message has one shape.
"""
import pickle


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, not a checkpoint, or not downloadable."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint that asks for something outside what the reader allows.

    Nothing it asked for was executed. Also a ``pickle.UnpicklingError`` (what ``torch.load``
    raises for such a file), so existing ``except pickle.UnpicklingError`` handlers still work.
    """


class CheckpointDownloadError(CheckpointError):
    """A checkpoint URL that gave no usable file (HTTP error, no route, a wrong hash)."""


class Damaged(Exception):
    """Internal: the file is truncated, corrupted or not a checkpoint; ``reason`` says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """Internal: the file is well formed but holds something the reader will not build
    (TorchScript code, a tar archive, a compressed record, a sparse tensor...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RefusedByAllowList(pickle.UnpicklingError):
    """Raised inside the unpickler when the stream asks for something not allowed.

    Args:
        request: what was asked for, e.g. ``posix.system`` or ``getattr(HistoryBuffer,
            '__init__')``.
        exists: whether the request names something real. A global that exists nowhere
            (``torch._utils._rebui``: a file cut inside a name) could not have run, so the
            reader reports such a file as damaged rather than as an attack.
    """

    def __init__(self, request: str, exists: bool = True) -> None:
        super().__init__(request)
        self.request = request
        self.exists = exists


# Tracebacks name the public path (mmseg_hrplus.checkpoint.UnsafeCheckpointError).
for _error in (CheckpointError, UnsafeCheckpointError, CheckpointDownloadError):
    _error.__module__ = 'mmseg_hrplus.checkpoint'
