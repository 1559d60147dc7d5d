"""The Winograd autotune: per conv shape, the measured choice between Winograd and the direct
conv, kept for every layer of the process (see the package notes in
:mod:`mmseg_hrplus.models.layers.winograd`)."""
from typing import Callable, Dict, NamedTuple

from mmseg_hrplus.utils import timing

#: Interleaved timing rounds per path when autotuning a conv shape (after one warm-up each),
#: at least; more until each path has run :data:`AUTOTUNE_MIN_TOTAL_S` seconds (at most
#: :data:`AUTOTUNE_MAX_REPEATS` rounds): short convs are the noisiest.
AUTOTUNE_REPEATS = 5
AUTOTUNE_MIN_TOTAL_S = 0.02
AUTOTUNE_MAX_REPEATS = 50
#: Winograd is kept when its minimum time is at most this fraction of the direct conv's.
AUTOTUNE_MARGIN = 0.95


class ConvShape(NamedTuple):
    """What an autotune decision is keyed on."""
    in_channels: int
    out_channels: int
    batch: int
    height: int
    width: int
    tile: int
    bias: bool
    channels_last: bool
    dtype: str
    threads: int
    #: what the call differentiates: '' (inference: forward only), 'weight', 'input' or
    #: 'input+weight' (training: forward and backward are timed together).
    gradients: str = ''


class WinogradDecision(NamedTuple):
    """``choice`` ('winograd' or 'direct') and the minimum seconds per call of each path."""
    choice: str
    winograd_s: float
    direct_s: float


_DECISIONS: Dict[ConvShape, WinogradDecision] = {}


def winograd_decisions() -> Dict[ConvShape, WinogradDecision]:
    """A copy of the autotune decisions made so far in this process."""
    return dict(_DECISIONS)


def winograd_decision_records() -> list:
    """:func:`winograd_decisions` as a list of flat dicts (for JSON reports)."""
    return [dict(shape._asdict(), **decision._asdict())
            for shape, decision in _DECISIONS.items()]


def clear_winograd_decisions() -> None:
    """Forget every autotune decision (the next call per shape measures again)."""
    _DECISIONS.clear()


def _decision(key: ConvShape,
              paths: Callable[[], Dict[str, Callable[[], object]]]) -> WinogradDecision:
    """The decision cached for ``key``, or one measured now: :func:`min_seconds` of the two
    callables ``paths()`` returns ('winograd', 'direct'; built only when measuring), Winograd
    kept if it takes at most :data:`AUTOTUNE_MARGIN` of the direct time."""
    decision = _DECISIONS.get(key)
    if decision is None:
        times = min_seconds(paths())
        faster = times['winograd'] <= AUTOTUNE_MARGIN * times['direct']
        decision = _DECISIONS[key] = WinogradDecision('winograd' if faster else 'direct',
                                                      times['winograd'], times['direct'])
    return decision


def min_seconds(fns: Dict[str, Callable[[], object]], repeats: int = AUTOTUNE_REPEATS,
                warmup: int = 1, min_total_s: float = AUTOTUNE_MIN_TOTAL_S,
                max_repeats: int = AUTOTUNE_MAX_REPEATS) -> Dict[str, float]:
    """Minimum seconds per call of each function, timed by the package's interleaved timer
    (:func:`mmseg_hrplus.utils.timing.interleaved_times`): ``warmup`` untimed calls each, then
    rounds in which each runs once, the order alternating per round: at least ``repeats`` rounds,
    more until every function has run ``min_total_s`` seconds, at most ``max_repeats``."""
    return timing.min_seconds(fns, repeats, warmup, min_total_s, max_repeats)
