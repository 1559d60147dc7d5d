"""Distributed training without CUDA, for mmengine 0.10.7 on any torch 2.x.

mmengine's Runner wraps the model in DDP with ``device_ids=[LOCAL_RANK]``, which torch refuses
for a CPU module, and SyncBN needs CUDA. :class:`CPUDistributedDataParallel` drops
``device_ids`` for CPU modules and turns SyncBN into BN; :func:`setup_distributed` starts the
gloo process group that mmengine's ``init_dist`` cannot start without CUDA. (Safe checkpoint
loading, once here too, lives in :mod:`mmseg_hrplus.checkpoint`.)
"""
import contextlib
import os
from typing import Iterator

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS


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


__all__ = ['CPUDistributedDataParallel', 'distributed_teardown', 'setup_distributed']
