"""mmseg_hrplus.benchmark.deploy_report: a run's section replaces its own on a page, keyed by the
config; the tables say what ran, in which precision, and why a path did not."""
import pytest

from mmseg_hrplus.benchmark.deploy_report import SECTION_TAG, accuracy_table, fps_table
from mmseg_hrplus.benchmark.markdown import replace_section as replace_any_section


def replace_section(text, key, body):
    return replace_any_section(text, key, body, tag=SECTION_TAG)

pytestmark = pytest.mark.torch21

ROW = dict(path='openvino-f32', precision='f32', mIoU=71.25, mIoU_diff=-0.01,
           agreement=0.9999876, max_rel_logit_diff=3.1e-6,
           speed=dict(speedup=(1.5, 1.25), fps=4.0, min_s=0.2, median_s=0.25),
           fps_speed={'512x1024': dict(fps=4.0, min_s=0.2, median_s=0.25)})


def test_section_is_appended_then_replaced_and_others_kept():
    page = replace_section('# Page\n\nintro\n', 'a.py', 'first A')
    page = replace_section(page, 'b.py', 'only B')
    page = replace_section(page, 'a.py', 'second A\n')
    a, b = ('<!-- deploy_accuracy: a.py -->', '<!-- end deploy_accuracy: a.py -->'), \
        ('<!-- deploy_accuracy: b.py -->', '<!-- end deploy_accuracy: b.py -->')
    assert page == (f'# Page\n\nintro\n\n{a[0]}\nsecond A\n{a[1]}\n'
                    f'\n{b[0]}\nonly B\n{b[1]}\n')


def test_a_broken_section_is_not_guessed_at():
    page = '<!-- deploy_accuracy: a.py -->\nold\n'
    with pytest.raises(ValueError, match="1 start and 0 end markers of the section 'a.py'"):
        replace_section(page, 'a.py', 'new')
    with pytest.raises(ValueError, match='key=.* must be a non-empty single line'):
        replace_section('', 'a -->', 'new')


def test_accuracy_table_rows():
    emulated = dict(ROW, path='pytorch-bf16', precision='bf16 (emulated)', emulated=True)
    lines = accuracy_table([ROW, emulated, dict(path='openvino-bf16', not_run='no bf16')],
                           (512, 1024))
    assert lines[0].startswith('| path | precision run | mIoU | mIoU - f32 |')
    assert lines[2] == ('| openvino-f32 | f32 | 71.25 | -0.01 | 0.999988 | 3.1e-06 | '
                        '1.50x / 1.25x | 4.00 |')
    assert lines[3].endswith('| emulated, not meaningful | emulated, not meaningful |')
    assert lines[4] == '| openvino-bf16 | not run: no bf16 | | | | | | |'


def test_fps_table_has_median_and_best_per_shape_and_skips_paths_not_run():
    lines = fps_table([ROW, dict(path='openvino-bf16', not_run='no bf16')],
                      [(512, 1024), (1024, 2048)])
    assert lines[0] == ('| path | precision run | mIoU - f32 | fps at 512x1024 (median / best) '
                        '| fps at 1024x2048 (median / best) |')
    assert lines[2:] == ['| openvino-f32 | f32 | -0.01 | 4.00 / 5.00 | - |']
