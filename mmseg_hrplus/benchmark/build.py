"""A config's model built for timing: random init, no checkpoint loading, SyncBN as BN."""
import os
from pathlib import Path
from typing import Optional

import torch.nn as nn

#: The backbone ``conv_cfg`` of the Winograd training variant (the way a user switches it on).
WINOGRAD_CONV_CFG = dict(type='mmseg_hrplus.WinogradConv2d')


def resolve_config(path: str) -> str:
    """A file path, or ``pkg::rel/path.py`` inside the installed ``pkg``'s ``.mim/configs``.

    Raises:
        FileNotFoundError: naming ``path`` (and the file looked for, for ``pkg::``).
    """
    if '::' not in path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'config {path!r} does not exist')
        return path
    package, rel = path.split('::', 1)
    module = __import__(package)
    full = Path(module.__file__).parent / '.mim' / 'configs' / rel
    if not full.is_file():
        raise FileNotFoundError(f'config {path!r}: no {full}')
    return str(full)


def build_model(config: str, device: str = 'cpu', with_cp: Optional[bool] = None,
                conv_cfg: Optional[dict] = None) -> nn.Module:
    """Build the model of ``config`` (see :func:`resolve_config`; random init, no checkpoint,
    SyncBN -> BN) on ``device``; ``with_cp`` and ``conv_cfg``, if given, replace the
    backbone's."""
    from mmengine.config import Config

    from mmseg_hrplus.engine.runner import build_config_model, drop_checkpoint_loading
    cfg = Config.fromfile(resolve_config(config))
    drop_checkpoint_loading(cfg.model)  # the benchmark brings its own weights
    if with_cp is not None:
        cfg.model.backbone['with_cp'] = with_cp
    if conv_cfg is not None:
        cfg.model.backbone['conv_cfg'] = conv_cfg
    model = build_config_model(cfg)
    model.init_weights()
    return model.to(device)
