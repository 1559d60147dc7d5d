"""mmseg_hrplus.benchmark.timing: the summary arithmetic, and the timer it uses being the
package's one (its order and warm-up: tests/utils/test_interleaved_timing.py)."""
from mmseg_hrplus.benchmark import timing
from mmseg_hrplus.benchmark.timing import summarise
from mmseg_hrplus.utils.timing import interleaved_times


def test_benchmark_times_with_the_package_timer():
    assert timing.interleaved_times is interleaved_times


def test_summarise_min_median_and_ratios():
    times = {'ref': [2.0, 4.0, 3.0], 'fast': [1.0, 1.5, 3.0]}
    out = summarise(times, 'ref')
    assert out['times_s'] is times
    assert out['min_s'] == {'ref': 2.0, 'fast': 1.0}
    assert out['median_s'] == {'ref': 3.0, 'fast': 1.5}
    assert out['speedup'] == {'fast': {'min': 2.0, 'median': 2.0}}
    assert out['time_ratio'] == {'fast': {'min': 0.5, 'median': 0.5}}
    assert set(summarise(times, None)) == {'times_s', 'min_s', 'median_s'}
