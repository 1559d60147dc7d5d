"""mmengine's checkpoint schemes, each replaced by one that reads with the safe reader.

Every checkpoint mmengine, mmseg and mmdet read goes through
:class:`mmengine.runner.CheckpointLoader`: ``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained')``, :func:`mmengine.runner.load_checkpoint`, mmseg's
``init_model``, mmdet's ``init_detector``, our converters and tools. Its schemes are functions
keyed by prefix; mmengine's call ``torch.load`` (whose default lets a pickle run code on
torch < 2.6) and ``torch.hub.load_state_dict_from_url`` (the same on every torch), and its
``open-mmlab://``, ``mmcls://`` and ``torchvision://`` loaders call its http loader directly.
So every scheme is replaced, each resolving names exactly as mmengine does and reading with
:func:`.reader.read_checkpoint`. The function names keep mmengine's ``load_from_<backend>``
form because ``CheckpointLoader`` logs ``name[10:]`` as the backend.
"""
import io
import logging
import os
import os.path as osp
import tempfile
from typing import Any, Callable, Dict, Tuple

from mmengine.logging import print_log
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .download import load_from_http
from .reader import read_checkpoint
from .tensors import MapLocation


def load_from_local(filename: str, map_location: MapLocation = None) -> Any:
    """Local paths (the empty prefix)."""
    return read_checkpoint(filename, map_location)


#: mmengine's copy of torchvision 0.12's name -> URL table (``resnet101``, ``resnet50``, ...).
TORCHVISION_URLS_WITHOUT_TORCHVISION = osp.join('hub', 'torchvision_0.12.json')


def torchvision_model_urls() -> Dict[str, str]:
    """The ``torchvision://NAME`` table: mmengine's, which imports torchvision to list it.

    Neither mmengine, mmseg nor mmdet requires torchvision, and mmengine's table raises
    ``ModuleNotFoundError`` without it. The names our configs use (``resnet101``) are in
    mmengine's own copy of torchvision 0.12's table, which mmengine also starts from when
    torchvision is installed; without torchvision that copy is the table (the newer
    ``resnet101.imagenet1k_v2``-style names need torchvision).
    """
    try:
        return mmengine_checkpoint.get_torchvision_models()
    except ImportError:
        import mmengine
        from mmengine.fileio import load
        return dict(load(osp.join(mmengine.__path__[0], TORCHVISION_URLS_WITHOUT_TORCHVISION)))


def resolve_torchvision(filename: str) -> str:
    """The URL that ``torchvision://NAME`` (or the deprecated ``modelzoo://NAME``) stands for."""
    prefix, model_name = filename.split('://', 1)
    if prefix == 'modelzoo':
        print_log('The URL scheme of "modelzoo://" is deprecated, please use "torchvision://" '
                  'instead', logger='current', level=logging.WARNING)
    return _url_for(torchvision_model_urls(), model_name, filename)


def load_from_torchvision(filename: str, map_location: MapLocation = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): the table, then http."""
    return load_from_http(resolve_torchvision(filename), map_location)


def resolve_openmmlab(filename: str) -> str:
    """The URL (or file under mmengine's home) that ``open-mmlab://NAME`` stands for."""
    prefix, model_name = filename.split('://', 1)
    deprecated = mmengine_checkpoint.get_deprecated_model_names()
    if model_name in deprecated:
        print_log(f'{prefix}://{model_name} is deprecated in favor of '
                  f'{prefix}://{deprecated[model_name]}', logger='current',
                  level=logging.WARNING)
        model_name = deprecated[model_name]
    return _url_for(mmengine_checkpoint.get_external_models(), model_name, filename)


def load_from_openmmlab(filename: str, map_location: MapLocation = None) -> Any:
    """``open-mmlab://NAME`` and ``openmmlab://NAME``: mmengine's model list, then http."""
    target = resolve_openmmlab(filename)
    if target.startswith(('http://', 'https://')):
        return load_from_http(target, map_location)
    local = osp.join(mmengine_checkpoint._get_mmengine_home(), target)
    if not osp.isfile(local):
        raise FileNotFoundError(f'{local} can not be found ({filename}).')
    return read_checkpoint(local, map_location)


def load_from_mmcls(filename: str, map_location: MapLocation = None) -> Any:
    """``mmcls://NAME``: the mmcls model list, then http; backbone keys only, as mmengine."""
    urls = mmengine_checkpoint.get_mmcls_models()
    url = _url_for(urls, filename[len('mmcls://'):], filename)
    return mmengine_checkpoint._process_mmcls_checkpoint(load_from_http(url, map_location))


def load_from_ceph(filename: str, map_location: MapLocation = None,
                   backend: str = 'petrel') -> Any:
    """``s3://`` and ``petrel://`` through mmengine's file backend, read from memory."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return read_checkpoint(buffer, map_location, name=filename)


def load_from_pavi(filename: str, map_location: MapLocation = None) -> Any:
    """``pavi://`` through the pavi model cloud, downloaded to a temporary folder."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, model.name)
        model.download(path)
        return read_checkpoint(path, map_location, name=filename)


def _url_for(urls: Dict[str, str], model_name: str, filename: str) -> str:
    try:
        return urls[model_name]
    except KeyError:
        raise KeyError(f'{filename}: unknown model name {model_name!r}') from None


#: Every prefix mmengine 0.10.7 registers, with the safe loader for it.
SAFE_LOADERS: Tuple[Tuple[Tuple[str, ...], Callable], ...] = (
    (('',), load_from_local),
    (('http://', 'https://'), load_from_http),
    (('modelzoo://', 'torchvision://'), load_from_torchvision),
    (('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    (('mmcls://',), load_from_mmcls),
    ((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'), load_from_ceph),
    (('pavi://',), load_from_pavi),
)


def install_safe_loaders() -> None:
    """Register every loader of :data:`SAFE_LOADERS` in mmengine's ``CheckpointLoader``."""
    for prefixes, loader in SAFE_LOADERS:
        CheckpointLoader.register_scheme(prefixes=list(prefixes), loader=loader, force=True)


def unsafe_schemes() -> Dict[str, str]:
    """Prefixes whose registered loader is not ours (empty when every path is safe)."""
    ours = {loader for _, loader in SAFE_LOADERS}
    return {prefix: getattr(loader, '__name__', repr(loader))
            for prefix, loader in CheckpointLoader._schemes.items() if loader not in ours}


def loaders_are_ours() -> bool:
    """Whether every registered checkpoint scheme reads with the safe reader."""
    return not unsafe_schemes() and \
        CheckpointLoader._get_checkpoint_loader(os.sep + 'x.pth') is load_from_local
