"""tools/benchmark.py --openvino-precision and --bf16 on a tiny HRNet+FCN pair (ours vs mmseg's
HRNet, same weights): OpenVINO f32 and int8 in the same interleaved rounds, each with the
precision it reads back and how many convolutions run int8; ours under bf16 autocast timed
where the CPU has bf16 (here with the CPU check told a bf16 CPU's flags and the compile
skipped: tests/deploy/test_bf16.py), refused where it has not."""
import openvino  # noqa: F401  (a CI dependency via requirements/openvino.txt: never skipped)
import pytest

from mmseg_hrplus.utils.cpu_info import cpu_flags, has_native_bf16
from tests.helpers.float_bounds import BF16_DEEP, DEEP, check_relative
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs
from tests.helpers.tools import load_tool, run_tool_main

pytestmark = pytest.mark.torch21
benchmark = load_tool('benchmark.py')


def test_openvino_f32_and_int8_in_the_same_rounds(tmp_path, capsys):
    ours, ref = write_tiny_hrnet_fcn_configs(tmp_path)
    report = run_tool_main(benchmark, [
        str(ours), '--reference', str(ref), '--shape', '1', '3', '64', '96', '--repeats', '2',
        '--openvino-precision', 'f32', '--openvino-precision', 'int8', '--train-repeats', '0',
        '--threads', '1'])
    inference = report['inference']
    assert set(inference['min_s']) == {'ours', 'reference', 'openvino', 'openvino_int8'}
    assert len(inference['times_s']['openvino_int8']) == 2
    f32, int8 = inference['openvino'], inference['openvino_int8']
    assert (f32['requested'], f32['precision'], f32['int8_convolutions']) == ('f32', 'f32',
                                                                              '0 of 55')
    # int8: the compiled model's hint is f32 and every convolution runs int8
    assert (int8['requested'], int8['precision'], int8['int8_convolutions']) == ('int8', 'f32',
                                                                                 '55 of 55')
    scale = inference['logit_abs_max']
    check_relative(f32['max_abs_diff_vs_exported'], scale, DEEP, 'OpenVINO f32 vs ours')
    assert int8['max_abs_diff_vs_exported'] > 10 * DEEP * scale  # quantized: not f32
    printed = capsys.readouterr().out
    assert (f'  openvino_int8 (int8): OpenVINO {int8["openvino"]}: precision f32, 1 threads, '
            f'hint LATENCY, int8 convolutions 55 of 55 ({int8["isa"]} CPU)') in printed


def test_bf16_rows_on_a_bf16_cpu(tmp_path, capsys, monkeypatch):
    import mmseg_hrplus.deploy.bf16 as bf16
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: {'avx512f', 'avx512_bf16'})
    monkeypatch.setattr(bf16, 'compile_for_inference', lambda model: None)
    ours, ref = write_tiny_hrnet_fcn_configs(tmp_path)
    report = run_tool_main(benchmark, [
        str(ours), '--reference', str(ref), '--shape', '1', '3', '64', '96', '--repeats', '1',
        '--bf16', '--train-repeats', '0', '--threads', '1'])
    inference = report['inference']
    assert set(inference['min_s']) == {'ours', 'reference', 'ours_bf16_compiled'}
    check_relative(inference['max_abs_diff']['ours_bf16_compiled'], inference['logit_abs_max'],
                   BF16_DEEP, 'ours in bf16 vs mmseg f32')
    assert 'ours_bf16_compiled: bf16 (autocast: convs in bf16, logits f32)' in (
        capsys.readouterr().out)


@pytest.mark.skipif(has_native_bf16(cpu_flags()), reason='this CPU has native bf16')
@pytest.mark.parametrize('flags', [['--bf16'], ['--openvino-precision', 'bf16']])
def test_bf16_is_refused_on_this_cpu(tmp_path, capsys, flags):
    with pytest.raises(SystemExit):
        benchmark.parse_args(['never.py'] + flags)
    assert "precision='bf16' needs a CPU with native bf16" in capsys.readouterr().err


def test_unknown_openvino_precision_is_refused(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(['never.py', '--openvino-precision', 'fp16'])
    assert "argument --openvino-precision: invalid choice: 'fp16' (choose from" in (
        capsys.readouterr().err)
