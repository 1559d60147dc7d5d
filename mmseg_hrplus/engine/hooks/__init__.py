"""Training hooks, registered in mmengine's root HOOKS (reachable from mmseg and mmdet scopes)."""
from .converted_checkpoints_hook import MissingConvertedCheckpoint, RequireConvertedCheckpointsHook
from .iteration_seed_hook import IterationSeedHook
from .model_contract_hook import ModelContractHook
from .non_finite_loss_hook import NonFiniteLossHook

__all__ = ['IterationSeedHook', 'MissingConvertedCheckpoint', 'ModelContractHook',
           'NonFiniteLossHook', 'RequireConvertedCheckpointsHook']
