"""Activation checkpointing (``with_cp``) with one meaning for every backbone and neck.

Checkpointing runs a module's forward a second time during backward to rebuild the activations
it did not keep. A training-mode BatchNorm updates its running statistics on every forward, so a
plain ``torch.utils.checkpoint`` (and mmcv/mmseg blocks with ``with_cp=True``) updates them
twice per step: the model trained with ``with_cp`` ends with other statistics than without.
:func:`checkpoint_module` restores them around the recomputation, so ``with_cp`` changes memory
and time only, never the numbers.
"""
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import ContextManager, Iterator, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint


@contextmanager
def restore_norm_stats(module: nn.Module) -> Iterator[None]:
    """Undo whatever the enclosed code does to the buffers (running mean and variance, batch
    count) of ``module``'s training-mode BatchNorm layers."""
    saved = [(m, [b.clone() for b in m.buffers()]) for m in module.modules()
             if isinstance(m, _BatchNorm) and m.training and m.track_running_stats]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in saved:
                for buf, old in zip(m.buffers(), buffers):
                    buf.copy_(old)


def _contexts(module: nn.Module) -> Tuple[ContextManager, ContextManager]:
    # (forward as usual, recomputation with the BN statistics restored afterwards)
    return nullcontext(), restore_norm_stats(module)


def checkpoint_module(module: nn.Module, *args: Tensor) -> Tensor:
    """``module(*args)`` under non-reentrant activation checkpointing, the recomputation leaving
    BN running statistics as the forward left them."""
    return checkpoint(module, *args, use_reentrant=False, context_fn=partial(_contexts, module))


def run_blocks(blocks: nn.Sequential, x: Tensor, with_cp: bool) -> Tensor:
    """Apply ``blocks`` one by one, each under :func:`checkpoint_module` when ``with_cp`` and
    autograd is recording (plain ``blocks(x)`` otherwise)."""
    if not (with_cp and torch.is_grad_enabled()):
        return blocks(x)
    for block in blocks:
        x = checkpoint_module(block, x)
    return x
