"""The ``torch.compile`` path of :func:`~mmseg_hrplus.deploy.optimize_for_inference`
(``compile=True``), and what inductor's on-disk cache did for it.

The backbone and every decode head's ``forward`` are compiled by inductor with
``freezing=True``: the weights become constants, so oneDNN gets prepacked weights and
conv + bias + ReLU/add run as one kernel. The first call per input size compiles, which takes
minutes for a large model on a CPU (measured: the README's speed section).

**Across processes.** Inductor keeps what it compiled in its cache directory
(``TORCHINDUCTOR_CACHE_DIR``, by default ``<tmp>/torchinductor_<user>``): the generated C++
kernels, and, where ``torch._inductor.config.fx_graph_cache`` is on (the default in recent
torch; torch 2.1 has no such cache), the compiled graphs themselves. A later process that
compiles the same architecture at the same input size then loads the graphs instead of
compiling them and only traces the model again. The frozen weights are not part of the cached
graph: a process with other weights of the same architecture (another checkpoint) hits the
same entries and computes with its own weights (``tests/deploy/test_compile_cache.py`` checks
both). Point ``TORCHINDUCTOR_CACHE_DIR`` at a persistent folder to keep the cache across
reboots, or at a shared one for a cluster's jobs.
"""
from typing import Dict, List

import torch
import torch.nn as nn

#: Inductor options of the compile path.
INDUCTOR_OPTIONS = {'freezing': True}
#: The outcomes :func:`inductor_cache_counts` reports.
CACHE_OUTCOMES = ('hit', 'miss', 'bypass')


def compile_for_inference(model: nn.Module) -> None:
    """Compile the backbone and every decode head's ``forward`` of an eval-mode,
    gradient-free ``model`` in place (a model without a backbone is compiled whole).

    mmseg calls ``decode_head.forward`` directly, not through ``__call__``, so a head's bound
    ``forward`` is replaced by its compiled form; the backbone goes through
    ``nn.Module.compile``, which keeps its forward pre-hooks (the channels_last one) working.
    Nothing is compiled until the first call.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        model.compile(options=INDUCTOR_OPTIONS)
        return
    backbone.compile(options=INDUCTOR_OPTIONS)
    for head in decode_heads(model):
        head.forward = torch.compile(head.forward, options=INDUCTOR_OPTIONS)


def decode_heads(model: nn.Module) -> List[nn.Module]:
    """``model.decode_head`` as a list (mmseg's cascade segmentors hold a ``ModuleList``)."""
    heads = getattr(model, 'decode_head', None)
    if heads is None:
        return []
    return list(heads) if isinstance(heads, nn.ModuleList) else [heads]


def inductor_cache_counts() -> Dict[str, int]:
    """How inductor's FX graph cache answered in this process so far, per compiled graph:
    ``{'hit': loaded from the cache, 'miss': compiled and stored, 'bypass': compiled, not
    storable}``. All zeros on a torch without that cache (2.1). Take it before and after a
    first call to see what that call did."""
    from torch._dynamo.utils import counters
    inductor = counters['inductor']
    return {outcome: int(inductor.get(f'fxgraph_cache_{outcome}', 0))
            for outcome in CACHE_OUTCOMES}


def inductor_cache_dir() -> str:
    """The folder inductor caches in (``TORCHINDUCTOR_CACHE_DIR`` or its default)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:  # torch < 2.4
        from torch._inductor.codecache import cache_dir
    return cache_dir()
