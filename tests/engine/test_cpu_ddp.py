"""engine/cpu_ddp.py: the CPU DDP wrapper works where mmengine's default wrapping dies, and the
process group is closed after a job."""
from contextlib import nullcontext

import pytest
import torch
import torch.nn as nn

from mmseg_hrplus.engine.cpu_ddp import CPUDistributedDataParallel, distributed_teardown

pytestmark = pytest.mark.torch21


@pytest.fixture
def single_process_gloo(tmp_path):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_cpu_wrapper_drops_device_ids_and_reverts_syncbn(single_process_gloo):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4))
    # mmengine's Runner passes device_ids=[LOCAL_RANK]; torch's DDP refuses that on CPU.
    with pytest.raises(ValueError, match='device_ids'):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2), device_ids=[0])
    wrapped = CPUDistributedDataParallel(module=module, device_ids=[0])
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in wrapped.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in wrapped.modules())
    out = wrapped(torch.randn(2, 3, 8, 8))
    out.sum().backward()
    assert out.shape == (2, 4, 6, 6)


@pytest.mark.parametrize('fails', [False, True])
def test_distributed_teardown_closes_the_group(tmp_path, fails):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        with pytest.raises(RuntimeError, match='job failed') if fails else nullcontext():
            with distributed_teardown():
                assert dist.is_initialized()
                if fails:
                    raise RuntimeError('job failed')
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
