"""Interleaved timing: robust to a machine that other processes load unevenly over time."""
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def interleaved_times(fns: Dict[str, Callable[[], object]], repeats: int, device: str = 'cpu',
                      warmup: int = 1) -> Dict[str, List[float]]:
    """Seconds per call of each function: ``warmup`` untimed calls each, then ``repeats``
    rounds in which every function runs once, the order rotating by one per round (so a burst
    of load elsewhere slows every variant alike, not the one that happened to run then).

    Raises:
        ValueError: ``repeats`` < 1 or no functions.
    """
    if repeats < 1 or not fns:
        raise ValueError(f'interleaved_times needs repeats >= 1 and at least one function, '
                         f'got repeats={repeats} and {len(fns)} functions')
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def summarise(times: Dict[str, List[float]], baseline: Optional[str]) -> dict:
    """``times_s``, ``min_s`` and ``median_s`` per variant and, against ``baseline`` (a key of
    ``times``, or None for none), ``speedup`` (baseline time / time) and ``time_ratio`` (time /
    baseline time) of both statistics, per other variant."""
    out: dict = {
        'times_s': times,
        'min_s': {k: min(v) for k, v in times.items()},
        'median_s': {k: statistics.median(v) for k, v in times.items()},
    }
    if baseline is not None:
        out['speedup'] = {}
        out['time_ratio'] = {}
        for name in times:
            if name == baseline:
                continue
            out['speedup'][name] = {
                s: out[f'{s}_s'][baseline] / out[f'{s}_s'][name] for s in ('min', 'median')}
            out['time_ratio'][name] = {
                s: out[f'{s}_s'][name] / out[f'{s}_s'][baseline] for s in ('min', 'median')}
    return out
