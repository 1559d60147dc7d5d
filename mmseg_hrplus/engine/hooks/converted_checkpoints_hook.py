"""Name the command that makes a converted checkpoint when a run needs it and it is absent.

Some configs start from weights that exist only after a conversion (a foreign project's file
through ``tools/model_converters/convert.py``): their ``load_from`` or a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=...)`` is a local path that nobody downloads.
Without this hook a run without that file fails deep inside mmengine's loader with a bare
``FileNotFoundError``; with it, the config declares each such file with its command, and the
run stops before any weight is initialised with one message that names both.
"""
import os.path as osp
from typing import Dict, Iterator, List

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


class MissingConvertedCheckpoint(FileNotFoundError):
    """A converted checkpoint the run reads is absent; the message names the command."""


def pretrained_checkpoints(model) -> Iterator[str]:
    """Every ``checkpoint`` of an ``init_cfg`` of type ``'Pretrained'`` in ``model``."""
    for module in model.modules():
        init_cfg = getattr(module, 'init_cfg', None)
        for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained' and cfg.get('checkpoint'):
                yield cfg['checkpoint']


def checkpoints_read_by(runner) -> List[str]:
    """The files a run reads into its model: ``load_from`` and every Pretrained init."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    read = list(pretrained_checkpoints(model))
    if getattr(runner, '_load_from', None):
        read.append(runner._load_from)
    return read


def _check_files(files) -> Dict[str, str]:
    if not isinstance(files, dict) or not files or not all(
            isinstance(path, str) and path and isinstance(command, str) and command.strip()
            for path, command in files.items()):
        raise ValueError('RequireConvertedCheckpointsHook: files must be a non-empty dict '
                         '{checkpoint path: command that writes it}, both non-empty strings; '
                         f'got {files!r}')
    return dict(files)


@HOOKS.register_module()
class RequireConvertedCheckpointsHook(Hook):
    """Stop at ``before_run`` if a declared converted checkpoint that the run reads is absent.

    ``before_run`` comes before mmengine's weight initialisation and ``load_from``, in
    ``Runner.train``, ``Runner.val`` and ``Runner.test``. A declared file the run does not
    read (``--cfg-options load_from=<another file>``, ``tools/test.py CONFIG OTHER_FILE``) is
    not checked.

    Args:
        files: checkpoint path, as the config writes it -> the command that makes it, e.g.
            ``{'checkpoints/x.pth': 'python tools/model_converters/convert.py SRC_FMT
            src.pth checkpoints/x.pth'}``.

    Raises:
        ValueError: at construction, if ``files`` is not such a dict.
        MissingConvertedCheckpoint: at ``before_run``, naming every absent file the run reads
            and its command.
    """

    priority = 'VERY_HIGH'

    def __init__(self, files: Dict[str, str]) -> None:
        self.files = _check_files(files)

    def before_run(self, runner) -> None:
        missing = [path for path in dict.fromkeys(checkpoints_read_by(runner))
                   if path in self.files and not osp.isfile(path)]
        if not missing:
            return
        lines = '\n'.join(f'  {path}: made by\n    {self.files[path]}' for path in missing)
        raise MissingConvertedCheckpoint(
            f'{len(missing)} converted checkpoint(s) this config starts from are absent '
            f'(relative paths count from {osp.abspath(".")}); nothing downloads them: make '
            f'each with its command, then run again\n{lines}')
