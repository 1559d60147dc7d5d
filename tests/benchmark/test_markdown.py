"""mmseg_hrplus.benchmark.markdown: sections keyed by command, replaced in place; the rendered
report states CPU, date, commit and command. tools/benchmark.py --markdown end to end is in
tests/tools/test_benchmark.py."""
import datetime

import pytest

from mmseg_hrplus.benchmark.markdown import (git_commit, render_benchmark, section_key,
                                             write_section)

pytestmark = pytest.mark.torch21


def test_section_key_drops_output_options_only():
    argv = ['tools/benchmark.py', 'a.py', '--json', 'x.json', '--repeats', '3',
            '--markdown=docs/b.md', '--markdown', 'p.md']
    assert section_key(argv) == 'tools/benchmark.py a.py --repeats 3'


def test_replace_section_appends_then_replaces_keeping_the_rest(tmp_path):
    page = tmp_path / 'docs' / 'page.md'
    write_section(page, 'cmd a', 'first A')
    page.write_text('# Title\n\nhand-written text\n\n' + page.read_text())
    write_section(page, 'cmd b', 'only B')
    write_section(page, 'cmd a', 'second A\nline 2')
    text = page.read_text()
    assert text.startswith('# Title\n\nhand-written text\n')
    assert 'first A' not in text and text.count('second A\nline 2') == 1
    assert text.index('second A') < text.index('only B')   # replaced where it stood
    assert text.count('<!-- measured: cmd a -->') == 1
    assert text.count('<!-- end measured: cmd b -->') == 1


def test_key_that_would_break_the_markers_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"key='a --> b' must be a non-empty single line"):
        write_section(tmp_path / 'p.md', 'a --> b', 'x')


def test_render_states_cpu_date_commit_command_and_ratios():
    report = dict(
        config='configs/x.py', reference='mmseg::y.py', threads=2, torch='2.13.0',
        command='python tools/benchmark.py configs/x.py --repeats 2',
        cpu=dict(summary='AMD EPYC (AVX2)'),
        inference=dict(shape=[1, 3, 64, 96], times_s={'ours': [2.0, 3.0], 'reference': [4, 4]},
                       min_s={'ours': 2.0, 'reference': 4.0},
                       median_s={'ours': 2.5, 'reference': 4.0},
                       speedup={'ours': dict(min=2.0, median=1.6)},
                       max_abs_diff={'ours': 0.5}, logit_abs_max=10.0))
    when = datetime.datetime(2026, 12, 6, 9, 30, tzinfo=datetime.timezone.utc)
    text = render_benchmark(report, when=when, commit='abc1234')
    assert '### x against mmseg::y.py' in text
    assert 'AMD EPYC (AVX2); 2 threads; torch 2.13.0' in text
    assert 'measured 2026-12-06 09:30 UTC at commit abc1234' in text
    assert '`python tools/benchmark.py configs/x.py --repeats 2`' in text
    assert 'input 1x3x64x96, 2 interleaved rounds' in text
    assert '| ours | 2.0000 | 2.5000 | 2.00x / 1.60x | 5.0e-02 |' in text
    assert '| reference | 4.0000 | 4.0000 | - | - |' in text


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == 'unknown'
