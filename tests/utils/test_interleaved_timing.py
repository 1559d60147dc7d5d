"""mmseg_hrplus.utils.timing, the package's one timer: the interleaved order, warm-up, the
extra rounds for short calls, and the minimum the Winograd autotune keeps."""
import pytest

from mmseg_hrplus.utils.timing import interleaved_times, min_seconds


def test_interleaved_order_rotates_after_the_warmup():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    times = interleaved_times(fns, repeats=4, warmup=2)
    # two untimed warm-up rounds in order, then rounds starting at a, b, c, a
    assert calls == list('abc' * 2) + list('abc' + 'bca' + 'cab' + 'abc')
    assert {k: len(v) for k, v in times.items()} == {'a': 4, 'b': 4, 'c': 4}
    assert all(t >= 0 for v in times.values() for t in v)


def test_two_functions_alternate_and_short_calls_get_more_rounds():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in 'ab'}
    # calls of ~0 s never reach min_total_s: rounds continue up to max_repeats
    times = interleaved_times(fns, repeats=2, warmup=1, min_total_s=10.0, max_repeats=5)
    assert calls == list('ab') + list('ab' + 'ba' + 'ab' + 'ba' + 'ab')
    assert {k: len(v) for k, v in times.items()} == {'a': 5, 'b': 5}
    # no min_total_s: exactly `repeats` rounds, whatever max_repeats says
    assert len(interleaved_times(fns, repeats=3, warmup=0, max_repeats=9)['a']) == 3


def test_min_seconds_is_the_minimum_of_the_rounds(monkeypatch):
    from types import SimpleNamespace

    from mmseg_hrplus.utils import timing
    ticks = iter([0.0, 3.0, 3.0, 4.0, 4.0, 6.0, 6.0, 6.5])  # a: 3 s, b: 1 s, then b: 2, a: 0.5
    monkeypatch.setattr(timing, 'time', SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert min_seconds({'a': lambda: None, 'b': lambda: None}, repeats=2, warmup=0) == dict(
        a=0.5, b=1.0)


def test_interleaved_times_refuses_nothing_to_time():
    with pytest.raises(ValueError, match='needs repeats >= 1 and at least one function, got '
                                         'repeats=0 and 1 functions'):
        interleaved_times({'a': lambda: None}, repeats=0)
    with pytest.raises(ValueError, match='got repeats=3 and 0 functions'):
        interleaved_times({}, repeats=3)
