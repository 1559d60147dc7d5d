"""mmseg_hrplus.benchmark.markdown: sections keyed by command, replaced in place; the rendered
report states CPU, date, commit and command. tools/benchmark.py --markdown end to end is in
tests/tools/test_benchmark.py."""
import datetime
import re

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
    assert '- CPU: AMD EPYC (AVX2); torch 2.13.0' in text
    assert 'measured 2026-12-06 09:30 UTC at commit abc1234' in text
    assert '`python tools/benchmark.py configs/x.py --repeats 2`' in text
    assert 'input 1x3x64x96, 2 interleaved rounds' in text
    assert '| ours | 2.0000 | 2.5000 | 2.00x / 1.60x | 5.0e-02 |' in text
    assert '| reference | 4.0000 | 4.0000 | - | - |' in text


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == 'unknown'


def test_git_commit_marks_changed_code_not_changed_pages(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(['git', '-C', str(tmp_path), '-c', 'user.name=t', '-c',
                        'user.email=t@t', *args], check=True, capture_output=True)
    git('init', '-q')
    (tmp_path / 'page.md').write_text('a\n')
    (tmp_path / 'code.py').write_text('a = 1\n')
    git('add', '.')
    git('commit', '-qm', 'first')
    head = git_commit(tmp_path)
    assert re.fullmatch(r'[0-9a-f]{7,}', head)
    (tmp_path / 'page.md').write_text('b\n')   # a tool wrote its results
    assert git_commit(tmp_path) == head
    (tmp_path / 'code.py').write_text('a = 2\n')
    assert git_commit(tmp_path) == head + '+changes'


def test_render_names_each_openvino_run_and_its_int8_convolutions():
    ov = dict(openvino='2026.4.1', precision='f32', threads=2, hint='LATENCY',
              exported='ours_optimized', int8_convolutions='56 of 56')
    inference = dict(shape=[1, 3, 8, 8], times_s={'openvino': [1.0], 'openvino_int8': [0.5]},
                     min_s={'openvino': 1.0, 'openvino_int8': 0.5},
                     median_s={'openvino': 1.0, 'openvino_int8': 0.5},
                     openvino=dict(ov, requested='f32', int8_convolutions='0 of 56'),
                     openvino_int8=dict(ov, requested='int8'))
    text = render_benchmark(dict(config='c.py', threads=2, torch='2.1.2', command='x',
                                 cpu=dict(summary='cpu'), inference=inference))
    assert ('- openvino: OpenVINO 2026.4.1, precision hint f32, 2 threads, hint LATENCY, run on '
            'the export of ours_optimized') in text
    assert ('- openvino_int8: OpenVINO 2026.4.1, precision hint f32, 56 of 56 convolutions in '
            'int8, 2 threads') in text
