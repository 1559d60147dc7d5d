"""Checkpoints by URL: download into torch's hub cache as mmengine does, then read safely.

mmengine's ``load_from_http`` calls ``torch.hub.load_state_dict_from_url``, whose
``weights_only`` defaults to False on every torch: a crafted file by URL runs its code. Here the
file lands where mmengine would put it (``$TORCH_HOME/hub/checkpoints/<name>``), so a cache
filled by mmengine is reused, and is then read by :func:`.reader.read_checkpoint`. A download
that is refused or unreadable is deleted from the cache, so a later load cannot mistake it for
a good one.
"""
import os
import os.path as osp
import urllib.error
from typing import Any, Optional
from urllib.parse import urlparse

import torch
import torch.distributed as dist

from .errors import CheckpointDownloadError, CheckpointError
from .reader import MapLocation, read_checkpoint


def cached_path_for(url: str, model_dir: Optional[str] = None) -> str:
    """Where mmengine (``torch.hub.load_state_dict_from_url``) keeps the file of ``url``."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.join(model_dir, osp.basename(urlparse(url).path))


def download_checkpoint(url: str, model_dir: Optional[str] = None,
                        progress: bool = False) -> str:
    """The cached file of ``url``, downloading it first if absent.

    torch writes the download to a temporary file and renames it when complete, so an
    interrupted download leaves nothing in the cache.

    Raises:
        CheckpointDownloadError: the server answered with an HTTP error, or could not be
            reached; the message names the URL and the reason.
    """
    cached = cached_path_for(url, model_dir)
    if osp.isfile(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, cached, hash_prefix=None, progress=progress)
    except urllib.error.HTTPError as err:
        raise CheckpointDownloadError(
            f'cannot download checkpoint {url}: HTTP {err.code} {err.reason}') from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, 'reason', None) or err
        raise CheckpointDownloadError(
            f'cannot download checkpoint {url}: {reason}') from None
    return cached


def load_checkpoint_from_url(url: str, map_location: MapLocation = None,
                             model_dir: Optional[str] = None, progress: bool = False) -> Any:
    """Download (or reuse) ``url`` and read it with the safe reader.

    Errors name the URL and the cached path; a file that is refused or cannot be read is
    removed from the cache before the error is raised.
    """
    cached = download_checkpoint(url, model_dir, progress)
    try:
        return read_checkpoint(cached, map_location, name=f'{url} (downloaded to {cached})')
    except CheckpointError as err:
        if osp.isfile(cached):
            os.remove(cached)
        raise type(err)(f'{err}; the download was deleted from the cache') from None


def load_from_http(filename: str, map_location: MapLocation = None,
                   model_dir: Optional[str] = None) -> Any:
    """mmengine's ``http://``/``https://`` loader, downloading on rank 0 first.

    In a distributed run rank 0 downloads while the others wait at a barrier, then every rank
    reads the cached file (as mmengine does), so one machine downloads a file once.
    """
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not distributed:
        return load_checkpoint_from_url(filename, map_location, model_dir)
    result, error = None, None
    if dist.get_rank() == 0:
        try:
            result = load_checkpoint_from_url(filename, map_location, model_dir)
        except CheckpointError as err:
            error = err
    dist.barrier()
    if dist.get_rank() > 0:
        result = load_checkpoint_from_url(filename, map_location, model_dir)
    if error is not None:
        raise error
    return result
