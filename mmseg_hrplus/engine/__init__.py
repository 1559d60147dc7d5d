"""What runs around mmengine's Runner: the CPU distributed wrapper (:mod:`.cpu_ddp`, registered
on import), runner building for the tools (:mod:`.runner`), and the training safeguards (hooks
and the config helper that adds them)."""
from typing import List

from . import cpu_ddp  # noqa: F401  (registers the CPU DDP wrapper)
from .hooks import (IterationSeedHook, MissingConvertedCheckpoint, ModelContractHook,
                    NonFiniteLossHook, RequireConvertedCheckpointsHook)

#: Hooks ``tools/train.py`` adds to every config that does not list them already.
DEFAULT_TRAINING_HOOKS = ('NonFiniteLossHook', 'IterationSeedHook')


def _hook_name(hook) -> str:
    kind = hook.get('type') if isinstance(hook, dict) else type(hook).__name__
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    return kind.rsplit('.', 1)[-1]  # 'mmengine.NonFiniteLossHook' counts as present


def add_training_hooks(cfg, names=DEFAULT_TRAINING_HOOKS) -> List[str]:
    """Append ``names`` to ``cfg.custom_hooks`` unless present; returns the names added."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {_hook_name(hook) for hook in hooks}
    added = [name for name in names if name not in present]
    cfg.custom_hooks = hooks + [dict(type=name) for name in added]
    return added


__all__ = ['DEFAULT_TRAINING_HOOKS', 'IterationSeedHook', 'MissingConvertedCheckpoint',
           'ModelContractHook', 'NonFiniteLossHook', 'RequireConvertedCheckpointsHook',
           'add_training_hooks']
