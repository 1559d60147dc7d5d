"""Stop training at the first NaN or infinite loss, before that step's checkpoint is written."""
import math
from typing import Dict, Optional, Sequence

import torch
from mmengine.dist import all_reduce, get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _non_finite_losses(outputs: Optional[Dict]) -> Dict[str, float]:
    """The entries of a train step's log vars named ``*loss*`` that are NaN or infinite."""
    bad = {}
    for name, value in (outputs or {}).items():
        if 'loss' not in name:  # accuracies may be NaN on an all-ignored crop; not a failure
            continue
        value = float(value.detach().float().mean()) if torch.is_tensor(value) else float(value)
        if not math.isfinite(value):
            bad[name] = value
    return bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` naming the iteration when a loss becomes NaN or infinite.

    Its priority ('ABOVE_NORMAL') runs it before ``CheckpointHook`` ('VERY_LOW') in
    ``after_train_iter``: the optimizer step of the failing iteration has already written
    non-finite values into the weights, so stopping there keeps the last checkpoint on disk
    the last good one. Iterations are counted from 1, as in the log lines and in the
    ``iter_<n>.pth`` names. In distributed training the ranks agree (one all-reduce of a flag)
    so that every rank stops at the same iteration instead of the healthy ones waiting for the
    failed one in the next gradient all-reduce.

    ``tools/train.py`` adds this hook to ``custom_hooks`` unless the config already has it.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[Sequence] = None,
                         outputs: Optional[Dict] = None) -> None:
        bad = _non_finite_losses(outputs)
        flag = torch.tensor([float(bool(bad))])
        all_reduce(flag)  # a no-op outside distributed training
        if flag.item() == 0:
            return
        iteration = runner.iter + 1
        last = runner.message_hub.get_info('last_ckpt')
        if bad:
            found = ', '.join(f'{name}={value}' for name, value in bad.items())
            where = f'({found} on rank {get_rank()})'
        else:
            where = '(on another rank)'
        raise FloatingPointError(
            f'loss is {next(iter(bad.values()), "non-finite")} at iteration {iteration} {where}: '
            f'training stopped before checkpoint {iteration} was written; last checkpoint: '
            f'{last or "none saved yet"}. Lower the learning rate or check the data and labels '
            'of this iteration.')
