"""Checkpoint reading that never runs code from the file, on torch 2.1 through the newest.

Why a restricted unpickler rather than torch's ``weights_only=True``: torch's safe mode can be
extended to mmengine's objects (``HistoryBuffer``, numpy scalars) only with
``torch.serialization.add_safe_globals``, which exists from torch 2.4; torch 2.1, the stack of
OpenMMLab's prebuilt mmcv 2.1.0 wheels, either refuses every mmengine checkpoint
(``weights_only=True``) or runs anything (the default). ``torch.load`` has accepted a
``pickle_module`` for every release, so one unpickler of ours (:mod:`.restricted_pickle`,
checking each opcode that can reach code against :mod:`.allow_list`) gives the same behaviour
everywhere, and the allow-list lives in one place with the reader.

* :func:`read_checkpoint`: a path or file object, with one-line errors naming the file;
* :func:`load_checkpoint_from_url`: download into torch's hub cache, then read; a refused or
  unreadable download is deleted from the cache;
* :func:`install_safe_loaders`: every scheme of mmengine's ``CheckpointLoader`` (local,
  ``http(s)://``, ``open-mmlab://``, ``mmcls://``, ``torchvision://``, ``s3://``, ``pavi://``)
  reads through the above;
* :func:`install_mismatch_errors`: a strict load of a checkpoint that does not fit the model
  raises :class:`CheckpointMismatchError`, one line naming the file, the model and the keys.

:func:`mmseg_hrplus.setup` calls both when the package is imported.
"""
from .allow_list import HISTORY_BUFFER_METHODS, AllowList, default_allow_list
from .download import cached_path_for, download_checkpoint, load_checkpoint_from_url
from .errors import (CheckpointDownloadError, CheckpointError, RefusedByAllowList,
                     UnsafeCheckpointError)
from .mismatch import CheckpointMismatchError, install_mismatch_errors
from .loaders import SAFE_LOADERS, install_safe_loaders, loaders_are_ours, unsafe_schemes
from .reader import explain_load_error, last_checkpoint_name, read_checkpoint

__all__ = ['AllowList', 'CheckpointDownloadError', 'CheckpointError', 'CheckpointMismatchError',
           'HISTORY_BUFFER_METHODS', 'RefusedByAllowList', 'SAFE_LOADERS', 'UnsafeCheckpointError',
           'cached_path_for', 'default_allow_list', 'download_checkpoint', 'explain_load_error',
           'install_mismatch_errors', 'install_safe_loaders', 'last_checkpoint_name',
           'load_checkpoint_from_url', 'loaders_are_ours', 'read_checkpoint', 'unsafe_schemes']
