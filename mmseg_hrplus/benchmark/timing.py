"""Interleaved repeats (:func:`mmseg_hrplus.utils.timing.interleaved_times`, the package's one
timer) and their min/median/speed-up summary."""
import statistics
from typing import Dict, List, Optional

from mmseg_hrplus.utils.timing import interleaved_times

__all__ = ['interleaved_times', 'summarise']


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
