"""The speed of deployment paths (:mod:`.deploy_paths`) at given input sizes: every path's
logits function on the same ``1 x 3 x H x W`` input, in interleaved rounds
(:func:`mmseg_hrplus.benchmark.timing.interleaved_times`, the package's one timer), summarised
as min / median seconds, speed-up over the reference path and frames per second."""
from typing import Dict, Mapping, Sequence, Tuple

import torch

from .deploy_paths import DeployPath
from .timing import interleaved_times, summarise


def check_shape(shape: Sequence[int], argument: str = 'shape') -> Tuple[int, int]:
    """``(H, W)`` if ``shape`` is two ints >= 32 (BiSeNetV2 and HRNet downsample by 32), else
    ``ValueError`` naming ``argument``."""
    from mmseg_hrplus.utils.validation import check_ints
    return check_ints(argument, list(shape), length=2, minimum=32, entries=('H', 'W'))


def time_paths(paths: Mapping[str, DeployPath], shape: Sequence[int], repeats: int,
               seed: int = 0) -> Dict[str, dict]:
    """Time every path at ``shape`` (H, W), batch 1, ``repeats`` interleaved rounds after one
    untimed call each (which also lets a runtime adapt to the size).

    The input is standard-normal noise: what the data preprocessor makes of an image has that
    scale, and none of the paths' costs depend on the values.

    Returns:
        name -> ``dict(min_s, median_s, fps, speedup=(min, median))``, ``fps`` = 1 / median,
        the speed-up against the first path (1.0 for itself).
    """
    height, width = check_shape(shape)
    inputs = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    names = list(paths)
    times = interleaved_times({name: (lambda p=paths[name]: p.logits(inputs)) for name in names},
                              repeats)
    summary = summarise(times, names[0])
    out = {}
    for name in names:
        speedup = summary['speedup'].get(name, dict(min=1.0, median=1.0))
        out[name] = dict(min_s=summary['min_s'][name], median_s=summary['median_s'][name],
                         fps=1.0 / summary['median_s'][name],
                         speedup=(speedup['min'], speedup['median']))
    return out
