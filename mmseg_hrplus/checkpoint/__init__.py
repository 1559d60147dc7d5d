"""Checkpoint reading that parses the file and never dispatches it to code, on torch 2.1 up.

* :func:`read_checkpoint`: a path or file object in any of torch's two formats or safetensors,
  with one-line errors naming the file (:mod:`.reader`);
* :func:`load_checkpoint_from_url`: download, verify, then cache (:mod:`.download`);
* :func:`save_safetensors`: weights in the format with no code path;
* :func:`install_safe_loaders`: every scheme of mmengine's ``CheckpointLoader`` (local,
  ``http(s)://``, ``open-mmlab://``, ``mmcls://``, ``torchvision://``, ``s3://``, ``pavi://``)
  reads through the above;
* :func:`install_mismatch_errors`: a strict load of a checkpoint that does not fit the model
  raises :class:`CheckpointMismatchError`, one line naming the file, the model and the keys.

:func:`mmseg_hrplus.setup` (:mod:`.setup`) calls both when the package is imported. What is
promised and what is not: docs/checkpoint_safety.md.
"""
from .allow_list import HISTORY_BUFFER_METHODS, AllowList, default_allow_list
from .download import cached_path_for, download_checkpoint, load_checkpoint_from_url
from .errors import (CheckpointDownloadError, CheckpointError, RefusedByAllowList,
                     UnsafeCheckpointError)
from .mismatch import CheckpointMismatchError, install_mismatch_errors
from .loaders import SAFE_LOADERS, install_safe_loaders, loaders_are_ours, unsafe_schemes
from .reader import explain_load_error, last_checkpoint_name, read_checkpoint
from .safetensors_format import save_safetensors

__all__ = ['AllowList', 'CheckpointDownloadError', 'CheckpointError', 'CheckpointMismatchError',
           'HISTORY_BUFFER_METHODS', 'RefusedByAllowList', 'SAFE_LOADERS', 'UnsafeCheckpointError',
           'cached_path_for', 'default_allow_list', 'download_checkpoint', 'explain_load_error',
           'install_mismatch_errors', 'install_safe_loaders', 'last_checkpoint_name',
           'load_checkpoint_from_url', 'loaders_are_ours', 'read_checkpoint', 'save_safetensors',
           'unsafe_schemes']
