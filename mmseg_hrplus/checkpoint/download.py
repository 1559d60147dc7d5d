"""Checkpoints by URL: downloaded, verified, and only then cached; then read safely.

mmengine's ``load_from_http`` calls ``torch.hub.load_state_dict_from_url``, whose
``weights_only`` defaults to False on every torch before 2.6, and keys its cache by file name
alone. Here:

* the cache is keyed by the whole URL (``<hub>/checkpoints/mmseg_hrplus/<sha256 of the URL,
  16 hex>/<file name>``), so a file fetched from one URL never answers for another, even with
  the same file name;
* a download goes to a temporary file beside its cache entry, is checked (the SHA-256 prefix
  that torch hub and OpenMMLab put in file names, ``name-<hex>.pth``, then a full read by
  :func:`.reader.read_checkpoint`) and only then renamed into place. A failure of any kind
  (refused, damaged, a wrong hash, out of memory, an interrupted or crashed process) leaves
  nothing under the cache name; a crashed process's temporary file is removed by the next
  download into the same folder.
"""
import hashlib
import os
import os.path as osp
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from typing import Any, Optional, Tuple
from urllib.parse import urlparse

import torch
import torch.distributed as dist

from .errors import CheckpointDownloadError, CheckpointError
from .reader import read_checkpoint
from .tensors import MapLocation

#: torch hub's rule for the hash in a file name: ``-<hex>.`` (at least 6 digits here).
HASH_IN_NAME = re.compile(r'-([a-f0-9]{6,64})\.')
_PARTIAL = '.partial-'
TIMEOUT_SECONDS = 60
#: ``hash_prefix`` default: the prefix the URL's file name carries (:func:`expected_hash_prefix`);
#: a caller may instead pass a hex prefix, or None for no hash check.
FROM_FILE_NAME = 'from-file-name'


def cache_folder(model_dir: Optional[str] = None) -> str:
    """The folder under which downloaded checkpoints are kept."""
    return osp.join(model_dir or osp.join(torch.hub.get_dir(), 'checkpoints'), 'mmseg_hrplus')


def cached_path_for(url: str, model_dir: Optional[str] = None) -> str:
    """Where the verified file of ``url`` is kept: one folder per URL."""
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    name = osp.basename(urlparse(url).path) or 'checkpoint'
    return osp.join(cache_folder(model_dir), key, name)


def expected_hash_prefix(url: str) -> Optional[str]:
    """The SHA-256 prefix a published file name carries (``resnet101-63fe2227.pth``)."""
    match = HASH_IN_NAME.search(osp.basename(urlparse(url).path))
    return match.group(1) if match else None


def _remove_stale_partials(folder: str) -> None:
    """Temporary files of processes that no longer run (a crash mid-download)."""
    for entry in os.listdir(folder):
        if not entry.startswith(_PARTIAL):
            continue
        pid = entry[len(_PARTIAL):].split('-')[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        try:
            os.remove(osp.join(folder, entry))
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fetch(url: str, destination, progress: bool) -> str:
    """Stream ``url`` into the open file ``destination``; return the SHA-256 hex digest."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={'User-Agent': 'mmseg_hrplus'})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            total = int(response.headers.get('Content-Length') or 0)
            done = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                destination.write(chunk)
                done += len(chunk)
                if progress and total:
                    print(f'\r{url}: {100 * done // total}%', end='', flush=True)
        if progress and total:
            print()
    except urllib.error.HTTPError as err:
        raise CheckpointDownloadError(
            f'cannot download checkpoint {url}: HTTP {err.code} {err.reason}') from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, 'reason', None) or err
        raise CheckpointDownloadError(f'cannot download checkpoint {url}: {reason}') from None
    return digest.hexdigest()


def _download_verified(url: str, cached: str, map_location: MapLocation, progress: bool,
                       hash_prefix: Optional[str] = FROM_FILE_NAME) -> Tuple[str, Any]:
    folder = osp.dirname(cached)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_partials(folder)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=f'{_PARTIAL}{os.getpid()}-')
    try:
        with os.fdopen(handle, 'wb') as destination:
            digest = _fetch(url, destination, progress)
        prefix = expected_hash_prefix(url) if hash_prefix == FROM_FILE_NAME else hash_prefix
        if prefix is not None and not digest.startswith(prefix):
            raise CheckpointDownloadError(
                f'cannot use checkpoint {url}: its SHA-256 begins {digest[:len(prefix)]}, the '
                f'file name says {prefix} (a different or damaged file); nothing was cached')
        try:
            loaded = read_checkpoint(partial, map_location, name=f'{url} (downloaded)')
        except CheckpointError as err:
            raise type(err)(f'{err}; nothing was cached') from None
        shutil.move(partial, cached)
        return cached, loaded
    finally:
        if osp.exists(partial):
            os.remove(partial)


def download_checkpoint(url: str, model_dir: Optional[str] = None,
                        progress: bool = False) -> str:
    """The verified cached file of ``url``, downloading and checking it first if absent.

    Raises:
        CheckpointDownloadError: HTTP error, no route, or a hash that does not match the name.
        CheckpointError: the download is not a checkpoint the reader accepts (not cached).
    """
    cached = cached_path_for(url, model_dir)
    if not osp.isfile(cached):
        _download_verified(url, cached, 'cpu', progress)
    return cached


def load_checkpoint_from_url(url: str, map_location: MapLocation = None,
                             model_dir: Optional[str] = None, progress: bool = False,
                             hash_prefix: Optional[str] = FROM_FILE_NAME) -> Any:
    """Download (or reuse) ``url`` and read it with the safe reader.

    A fresh download is read once, as its verification; a cached one is read from the cache.

    Args:
        hash_prefix: the SHA-256 prefix the download must have: by default the one the file
            name carries; a caller that knows better passes it (or None for no check), e.g.
            for a published name such as ``...-cocostuff164k-100000.pth`` whose ``-100000.``
            is an iteration count, not a hash.
    """
    cached = cached_path_for(url, model_dir)
    if not osp.isfile(cached):
        return _download_verified(url, cached, map_location, progress, hash_prefix)[1]
    return read_checkpoint(cached, map_location, name=f'{url} (cached at {cached})')


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
