"""Compatibility of the OpenMMLab 2.x stack with torch 2.x on any machine; active on import.

Two things mmengine 0.10.7 does not handle by itself:

1. **Safe checkpoint loading on torch >= 2.6.** ``torch.load`` defaults to
   ``weights_only=True`` there, and mmengine's own checkpoints (message hub with
   ``HistoryBuffer``, numpy scalars and arrays in ``meta``) are refused, so ``--resume`` and
   ``load_from`` break. We allow-list exactly the globals such a checkpoint needs with
   ``torch.serialization.add_safe_globals``. The default stays ``weights_only=True``: a pickle
   that would run code (``__reduce__`` to ``os.system``) is still refused.
2. **Distributed training on CPU.** mmengine's Runner wraps the model in DDP with
   ``device_ids=[LOCAL_RANK]``, which torch refuses for a CPU module, and SyncBN needs CUDA.
   :class:`CPUDistributedDataParallel` drops ``device_ids`` for CPU modules and turns SyncBN into
   BN; :func:`setup_distributed` starts the gloo process group that mmengine's ``init_dist``
   cannot start without CUDA.
"""
import contextlib
import os
import pickle
from typing import Any, Callable, Iterator, List, Tuple

import numpy as np
import torch
import torch.distributed as dist
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS

# ---------------------------------------------------------------------------------------------
# 1. Safe globals for mmengine checkpoints
# ---------------------------------------------------------------------------------------------

#: The only attributes an mmengine checkpoint fetches with ``getattr``: the statistics methods
#: a ``HistoryBuffer`` keeps in its state (pickled as ``getattr(HistoryBuffer, name)``).
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling: only HistoryBuffer's statistics.

    Allow-listing the real ``getattr`` would let a pickle reach ``os.system`` through any
    allowed object, so any other request is refused.
    """
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer methods '
        f'{HISTORY_BUFFER_METHODS} are allowed')


def _numpy_globals() -> List[Tuple[Any, str]]:
    """numpy objects a checkpoint pickles, under both module spellings (numpy 1.x and 2.x)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    pairs = []
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        pairs += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    pairs += [(np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype')]
    # numpy >= 1.25 pickles a dtype by its class (numpy.dtypes.Float64DType, ...).
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All'] if code not in 'Mm'}
    dtype_classes |= {type(np.dtype('datetime64[s]')), type(np.dtype('timedelta64[s]'))}
    for cls in dtype_classes:
        if cls is not np.dtype:
            pairs.append((cls, f'{cls.__module__}.{cls.__qualname__}'))
    return pairs


def safe_checkpoint_globals() -> List[Tuple[Any, str]]:
    """Every (object, qualified name) pair allowed when loading an mmengine checkpoint."""
    import codecs
    return _numpy_globals() + [
        (codecs.encode, '_codecs.encode'),  # numpy scalars pickle their bytes through it
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_history_buffer_getattr, 'builtins.getattr'),
    ]


def register_safe_globals() -> None:
    """Allow-list :func:`safe_checkpoint_globals` for ``torch.load(weights_only=True)``."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 loads everything anyway
        add_safe_globals(safe_checkpoint_globals())


# ---------------------------------------------------------------------------------------------
# 2. Distributed training without CUDA
# ---------------------------------------------------------------------------------------------


def _has_sync_bn(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules())


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also works for a module on CPU (gloo backend).

    For a CPU module ``device_ids`` is dropped (torch's DDP refuses it) and SyncBN layers are
    reverted to BN, with one log line saying so. On CUDA it behaves as
    ``MMDistributedDataParallel``. ``tools/train.py`` selects it when CUDA is absent; a config
    selects it with ``model_wrapper_cfg=dict(type='CPUDistributedDataParallel')``.
    """

    def __init__(self, module: torch.nn.Module, detect_anomalous_params: bool = False,
                 **kwargs) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        if on_cpu:
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
            if _has_sync_bn(module):
                module = revert_sync_batchnorm(module)
                print_log('SyncBN converted to BN: distributed training without CUDA (gloo) '
                          'cannot synchronise batch statistics', logger='current')
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params,
                         **kwargs)


def setup_distributed(cfg, launcher: str) -> None:
    """Prepare a config for ``launcher`` ('none', 'pytorch', 'slurm', 'mpi') on this machine.

    With CUDA, mmengine's own ``init_dist`` does the job. Without CUDA, mmengine would call
    ``torch.cuda.set_device`` and die, so the gloo group is started here from torchrun's
    environment (mmengine then skips ``init_dist``) and the CPU wrapper is selected.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f"launcher={launcher!r} needs CUDA here; on CPU use launcher='pytorch' "
                         '(tools/dist_train.sh, torchrun)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', init_method='env://')
    wrapper = cfg.get('model_wrapper_cfg') or {}
    wrapper = dict(wrapper)
    wrapper.setdefault('type', 'CPUDistributedDataParallel')
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    os.environ.setdefault('LOCAL_RANK', str(dist.get_rank()))


@contextlib.contextmanager
def distributed_teardown() -> Iterator[None]:
    """Run a training or test job, then close the process group, if any, before exit.

    A gloo group left open when the interpreter exits can abort the process in C++ ("terminate
    called without an active exception", SIGABRT) after the job itself succeeded, which torchrun
    reports as a failure. After a successful job the ranks first wait for each other, so that
    none tears the group down while another still uses it.
    """
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if dist.is_available() and dist.is_initialized():
            try:
                if succeeded:  # after a failure another rank may never reach the barrier
                    dist.barrier()
            finally:
                dist.destroy_process_group()


register_safe_globals()

__all__ = ['CPUDistributedDataParallel', 'HISTORY_BUFFER_METHODS', 'distributed_teardown',
           'register_safe_globals', 'safe_checkpoint_globals', 'setup_distributed']
