"""What the tools share: config loading, runner building, and building a config's model alone.

The tools serve MMSeg and MMDet configs alike: the config's ``default_scope`` ('mmseg' or
'mmdet') picks the registry a custom ``runner_type`` is looked up in, and mmengine's Runner
takes the scope from the same field for everything it builds.
"""
import os
import os.path as osp
from importlib import import_module
from typing import Optional

from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch import nn

from .cpu_ddp import setup_distributed
from ..models.utils.contract import check_model_contract

SUPPORTED_SCOPES = ('mmseg', 'mmdet')


def config_scope(cfg: Config) -> str:
    """The config's ``default_scope``; only 'mmseg' and 'mmdet' configs are runnable here."""
    scope = cfg.get('default_scope')
    if scope not in SUPPORTED_SCOPES:
        raise ValueError(f'default_scope={scope!r} in the config; the tools run configs whose '
                         f'default_scope is one of {SUPPORTED_SCOPES}')
    return scope


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read ``path``, apply ``--cfg-options`` and ``--work-dir``, prepare the launcher.

    ``work_dir`` priority: argument, then the config's own, then ``work_dirs/<config name>``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    config_scope(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    os.environ.setdefault('LOCAL_RANK', '0')
    setup_distributed(cfg, launcher)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """mmengine's Runner, or the config's ``runner_type`` from its scope's RUNNERS registry.

    The built model is checked against its backbone's declared outputs
    (:func:`~mmseg_hrplus.models.utils.contract.check_model_contract`): a head or neck whose
    ``in_channels``/``in_index`` do not fit raises ``ValueError`` here, before any data is read.
    """
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runners = import_module(f'{config_scope(cfg)}.registry').RUNNERS
        runner = runners.build(cfg)
    check_model_contract(runner.model)
    return runner


def drop_checkpoint_loading(cfg_model) -> None:
    """Switch off every checkpoint a model config would download or load at ``init_weights``
    (the segmentor's ``pretrained``, the backbone's ``Pretrained`` ``init_cfg``): for tools that
    bring their own weights."""
    cfg_model['pretrained'] = None
    backbone = cfg_model.get('backbone', {})
    init = backbone.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        backbone['init_cfg'] = None
    backbone.pop('pretrained', None)


def build_config_model(cfg: Config, drop_auxiliary_heads: bool = False) -> nn.Module:
    """The config's model on its own, for one-process tools (benchmark, FLOPs, export).

    It is built in the config's ``default_scope`` ('mmseg' when the config names none),
    with SyncBN reverted to BN. No weights are initialised or loaded: call ``init_weights()``
    or load a checkpoint as the tool needs.

    Args:
        cfg: a loaded config with a ``model`` entry.
        drop_auxiliary_heads: remove ``auxiliary_head`` (training only) from a segmentor.

    Raises:
        ValueError: a ``default_scope`` other than 'mmseg' or 'mmdet'.
    """
    scope = cfg.get('default_scope') or 'mmseg'
    if scope not in SUPPORTED_SCOPES:
        raise ValueError(f'default_scope={scope!r} in the config; supported: {SUPPORTED_SCOPES}')
    init_default_scope(scope)
    model = import_module(f'{scope}.registry').MODELS.build(cfg.model)
    if drop_auxiliary_heads and getattr(model, 'auxiliary_head', None) is not None:
        model.auxiliary_head = None
    return revert_sync_batchnorm(model)
