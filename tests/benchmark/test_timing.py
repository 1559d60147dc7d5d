"""mmseg_hrplus.benchmark.timing: the interleaved order, warm-up, and the summary arithmetic."""
import pytest

from mmseg_hrplus.benchmark.timing import interleaved_times, summarise


def test_interleaved_order_rotates_after_the_warmup():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    times = interleaved_times(fns, repeats=4, warmup=2)
    # two untimed warm-up rounds in order, then rounds starting at a, b, c, a
    assert calls == list('abc' * 2) + list('abc' + 'bca' + 'cab' + 'abc')
    assert {k: len(v) for k, v in times.items()} == {'a': 4, 'b': 4, 'c': 4}
    assert all(t >= 0 for v in times.values() for t in v)


def test_interleaved_times_refuses_nothing_to_time():
    with pytest.raises(ValueError, match='needs repeats >= 1 and at least one function, got '
                                         'repeats=0 and 1 functions'):
        interleaved_times({'a': lambda: None}, repeats=0)
    with pytest.raises(ValueError, match='got repeats=3 and 0 functions'):
        interleaved_times({}, repeats=3)


def test_summarise_min_median_and_ratios():
    times = {'ref': [2.0, 4.0, 3.0], 'fast': [1.0, 1.5, 3.0]}
    out = summarise(times, 'ref')
    assert out['times_s'] is times
    assert out['min_s'] == {'ref': 2.0, 'fast': 1.0}
    assert out['median_s'] == {'ref': 3.0, 'fast': 1.5}
    assert out['speedup'] == {'fast': {'min': 2.0, 'median': 2.0}}
    assert out['time_ratio'] == {'fast': {'min': 0.5, 'median': 0.5}}
    assert set(summarise(times, None)) == {'times_s', 'min_s', 'median_s'}
