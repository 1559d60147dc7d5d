"""Interleaved timing: robust to a machine that other processes load unevenly over time.

The one timer of the package: the Winograd autotune (:mod:`mmseg_hrplus.models.layers.winograd`)
and ``tools/benchmark.py`` (:mod:`mmseg_hrplus.benchmark.timing`) both measure with it.
"""
import time
from typing import Callable, Dict, List, Optional

import torch


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def interleaved_times(fns: Dict[str, Callable[[], object]], repeats: int, device: str = 'cpu',
                      warmup: int = 1, min_total_s: float = 0.0,
                      max_repeats: Optional[int] = None) -> Dict[str, List[float]]:
    """Seconds per call of each function: ``warmup`` untimed calls each, then rounds in which
    every function runs once, the order rotating by one per round (so a burst of load elsewhere
    slows every variant alike, not the one that happened to run then; with two functions the
    order alternates).

    At least ``repeats`` rounds; more, up to ``max_repeats`` rounds, while some function has run
    less than ``min_total_s`` seconds in total (short calls are the noisiest).

    Raises:
        ValueError: ``repeats`` < 1 or no functions.
    """
    if repeats < 1 or not fns:
        raise ValueError(f'interleaved_times needs repeats >= 1 and at least one function, '
                         f'got repeats={repeats} and {len(fns)} functions')
    max_repeats = repeats if max_repeats is None else max(repeats, max_repeats)
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    r = 0
    while r < repeats or (r < max_repeats and min(map(sum, times.values())) < min_total_s):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
        r += 1
    return times


def min_seconds(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                min_total_s: float = 0.0, max_repeats: Optional[int] = None,
                device: str = 'cpu') -> Dict[str, float]:
    """The minimum of each function's :func:`interleaved_times`."""
    times = interleaved_times(fns, repeats, device, warmup, min_total_s, max_repeats)
    return {name: min(seconds) for name, seconds in times.items()}
