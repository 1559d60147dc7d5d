"""tools/benchmark.py --openvino on a tiny HRNet+FCN pair (ours vs mmseg's HRNet, same
weights): OpenVINO f32 on our export is timed in the same interleaved rounds as the other
paths, its logits are within the f32 bound of mmseg's, and the precision, threads and hint it
ran with are in the JSON and printed."""
import json

import openvino  # noqa: F401  (a CI dependency via requirements/openvino.txt: never skipped)
import pytest

from tests.helpers.float_bounds import DEEP, check_relative
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs
from tests.helpers.tools import load_tool, run_tool_main

pytestmark = pytest.mark.torch21
benchmark = load_tool('benchmark.py')


def _run(argv):
    return run_tool_main(benchmark, argv)


def test_openvino_in_the_interleaved_rounds(tmp_path, capsys):
    ours, ref = write_tiny_hrnet_fcn_configs(tmp_path)
    out = tmp_path / 'bench.json'
    report = _run([str(ours), '--reference', str(ref), '--shape', '1', '3', '64', '96',
                   '--repeats', '2', '--optimize', '--onnxruntime', '--openvino',
                   '--train-repeats', '0', '--threads', '1', '--json', str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    inference = report['inference']
    assert set(inference['min_s']) == {'ours', 'ours_optimized', 'reference', 'onnxruntime',
                                       'openvino'}
    # timed in the same rounds: one time per round, a ratio against mmseg's eager model
    assert len(inference['times_s']['openvino']) == 2
    assert all(t > 0 for t in inference['times_s']['openvino'])
    assert set(inference['speedup']['openvino']) == {'min', 'median'}
    assert inference['logit_abs_max'] > 1e-2  # calibrated BN: the comparison is not vacuous
    check_relative(inference['max_abs_diff']['openvino'], inference['logit_abs_max'], DEEP,
                   'OpenVINO f32 vs mmseg')
    ov = inference['openvino']
    assert (ov['precision'], ov['threads'], ov['hint']) == ('f32', 1, 'LATENCY')
    assert ov['exported'] == 'ours_optimized' and ov['export_and_load_s'] > 0
    check_relative(ov['max_abs_diff_vs_exported'], inference['logit_abs_max'], DEEP,
                   'OpenVINO vs the optimised model it was exported from')
    printed = capsys.readouterr().out
    assert 'speedup vs reference' in printed.split('  openvino ')[1].splitlines()[0]
    assert (f'  OpenVINO {ov["openvino"]}: precision f32, 1 threads, hint LATENCY '
            f'({ov["isa"]} CPU) (export + compile {ov["export_and_load_s"]:.1f} s) vs '
            f'ours_optimized: max|diff| {ov["max_abs_diff_vs_exported"]:.2e}') in printed


def test_openvino_needs_the_cpu(tmp_path, capsys):
    ours, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    with pytest.raises(SystemExit):
        benchmark.parse_args([str(ours), '--openvino', '--device', 'cuda'])
    assert "--openvino runs on the CPU: it needs --device cpu, got 'cuda'" in (
        capsys.readouterr().err)
