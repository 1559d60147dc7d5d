"""Strict loading of a checkpoint that belongs to another model: one line naming the file.

mmengine's ``load_state_dict`` raises a multi-line ``RuntimeError`` listing every key, without
saying which file or model they came from. Every mmengine path that puts a checkpoint into a
model (``load_from``, ``--resume``, ``init_cfg=dict(type='Pretrained')``, ``load_checkpoint``,
mmseg's ``init_model``, mmdet's ``init_detector``) reaches it through the module-level name
``mmengine.runner.checkpoint.load_state_dict``, so :func:`install_mismatch_errors` wraps that
one name. Non-strict loads are unchanged (mmengine logs the mismatch and loads what fits).
"""
import re
from typing import Any, List

from mmengine.runner import checkpoint as mmengine_checkpoint

from .errors import CheckpointError
from .reader import last_checkpoint_name

_SHAPE_RE = re.compile(r'size mismatch for ([^:]+): copying a param with shape torch\.Size\('
                       r'(\[[^\]]*\])\) from checkpoint, the shape in current model is '
                       r'torch\.Size\((\[[^\]]*\])\)')


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """A checkpoint whose keys or shapes do not fit the model under strict loading.

    Also a ``RuntimeError``, which is what mmengine raises for it.
    """


CheckpointMismatchError.__module__ = 'mmseg_hrplus.checkpoint'


def _listed(line_start: str, message: str) -> List[str]:
    for line in message.splitlines():
        if line.startswith(line_start):
            return [key.strip() for key in line[len(line_start):].split(',') if key.strip()]
    return []


def _few(items: List[str], limit: int = 3) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f', ... ({len(items) - limit} more)' if len(items) > limit else '')


def describe_mismatch(message: str) -> str:
    """mmengine's multi-line strict-load message, summarised in one line."""
    parts = []
    missing = _listed('missing keys in source state_dict: ', message)
    unexpected = _listed('unexpected key in source state_dict: ', message)
    shapes = [f'{key} (file {file}, model {model})'
              for key, file, model in _SHAPE_RE.findall(message)]
    for items, what in ((missing, 'missing from the file'), (unexpected, 'not in the model'),
                        (shapes, 'of another shape')):
        if items:
            parts.append(f'{len(items)} key{"s" if len(items) > 1 else ""} {what}: '
                         f'{_few(items)}')
    return '; '.join(parts) or ' '.join(message.split())


def checked_load_state_dict(module: Any, state_dict: Any, strict: bool = False,
                            logger: Any = None) -> None:
    """mmengine's ``load_state_dict``; a strict mismatch raises
    :class:`CheckpointMismatchError` naming the last checkpoint read and the model."""
    try:
        _MMENGINE_LOAD_STATE_DICT(module, state_dict, strict, logger)
    except RuntimeError as err:
        if not strict or 'do not match exactly' not in str(err):
            raise
        model = type(getattr(module, 'module', module)).__name__
        summary = describe_mismatch(str(err))
        source = last_checkpoint_name() or 'the state dict'
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit {model} (strict loading): {summary}. Is it the '
            'checkpoint of another model, or does it need a converter?') from None


_MMENGINE_LOAD_STATE_DICT = mmengine_checkpoint.load_state_dict


def install_mismatch_errors() -> None:
    """Make :func:`checked_load_state_dict` the one mmengine's loading paths call."""
    mmengine_checkpoint.load_state_dict = checked_load_state_dict
