"""optimize_for_inference(compile=True): the compiled model gives the eager logits, and a second
process reuses the first one's compiled graphs from inductor's on-disk cache, with its own
weights (see :mod:`mmseg_hrplus.deploy.inductor`)."""
from pathlib import Path

import pytest
import torch
import torch._inductor.config as inductor_config

from tests.helpers.detector_e2e import run_script
from tests.helpers.float_bounds import DEEP, assert_close_relative
from tests.helpers.tiny_models import relative_error

PROBE = 'tests.deploy.compile_probe'  # run as a module from the repository root


def _probe(seed: int, cache_dir: Path, out: Path) -> dict:
    run_script(['-m', PROBE, seed, out], timeout=900,
               env=dict(TORCHINDUCTOR_CACHE_DIR=str(cache_dir)))
    return torch.load(out)


@pytest.mark.skipif(not getattr(inductor_config, 'fx_graph_cache', False),
                    reason='this torch has no inductor FX graph cache (torch 2.1) or keeps it off')
def test_second_process_loads_compiled_graphs_and_uses_its_own_weights(tmp_path):
    cache_dir = tmp_path / 'inductor'
    first = _probe(1, cache_dir, tmp_path / 'first.pt')
    second = _probe(2, cache_dir, tmp_path / 'second.pt')

    # the first process compiled every graph (backbone, head) and stored it
    assert first['cache']['miss'] >= 2 and first['cache']['hit'] == 0, first['cache']
    assert first['cache']['bypass'] == 0, first['cache']
    # the second compiled nothing: every graph came from the cache
    assert second['cache'] == dict(hit=first['cache']['miss'], miss=0, bypass=0), \
        (first['cache'], second['cache'])

    for run in (first, second):
        assert_close_relative(run['compiled'], run['eager'], DEEP, 'compiled vs eager')
    # other weights, other logits: the cache did not carry the first process's frozen weights
    assert relative_error(second['eager'], first['eager']) > 0.1
