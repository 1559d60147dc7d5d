"""Training hooks, registered in mmengine's root HOOKS (reachable from mmseg and mmdet scopes)."""
from .iteration_seed_hook import IterationSeedHook
from .non_finite_loss_hook import NonFiniteLossHook

__all__ = ['IterationSeedHook', 'NonFiniteLossHook']
