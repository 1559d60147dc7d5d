"""tools/benchmark.py in-process on a tiny HRNet+FCN pair (ours vs mmseg's HRNet, same
weights): the JSON has the timing, ratio and difference fields, the logits agree, and
onnxruntime on our export is timed in the same rounds. The parts are tested in
tests/benchmark/."""
import json
from pathlib import Path

import pytest

from tests.helpers.float_bounds import DEEP, WINOGRAD_DEEP, check_relative
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs
from tests.helpers.tools import load_tool, run_tool_main

REPO = Path(__file__).resolve().parents[2]
benchmark = load_tool('benchmark.py')


@pytest.fixture
def config_pair(tmp_path):
    return write_tiny_hrnet_fcn_configs(tmp_path)


def _run(argv):
    return run_tool_main(benchmark, argv)


def test_benchmark_json(config_pair, tmp_path, capsys):
    ours, ref = config_pair
    out = tmp_path / 'bench' / 'out.json'
    report = _run([
        str(ours), '--reference', str(ref), '--shape', '1', '3', '64', '96',
        '--repeats', '1', '--optimize', '--optimize-reference', '--factorize-head', 'both',
        '--winograd', '--onnxruntime', '--train-winograd', '--train-batch', '2',
        '--train-shape', '32', '32', '--threads', '1', '--json', str(out),
        '--markdown', str(tmp_path / 'page.md')])
    data = json.loads(out.read_text())
    page = (tmp_path / 'page.md').read_text()
    key_line = next(line for line in page.splitlines() if line.startswith('<!-- measured: '))
    assert key_line.startswith('<!-- measured: tools/benchmark.py ') and str(out) not in key_line
    assert f'| onnxruntime | {data["inference"]["min_s"]["onnxruntime"]:.4f} |' in page
    assert 'Training step (forward, loss, backward, SGD), batch 2x3x32x32, 1 interleaved' in page
    assert data == json.loads(json.dumps(report))
    assert data['weights'] == 'ours -> reference (state dict, strict)'
    inference = data['inference']
    variants = {'ours', 'ours_optimized', 'ours_optimized_factorized', 'reference',
                'reference_optimized', 'ours_optimized_winograd', 'onnxruntime'}
    assert set(inference['min_s']) == variants
    assert all(len(t) == 1 and t[0] > 0 for t in inference['times_s'].values())
    for name in variants - {'reference'}:
        for stat in ('min', 'median'):
            speedup = inference['speedup'][name][stat]
            ratio = inference['time_ratio'][name][stat]
            assert speedup > 0 and abs(speedup * ratio - 1) < 1e-9
    assert inference['logit_abs_max'] > 1e-2  # calibrated BN: the comparison is not vacuous
    # Our HRNet runs the ops of mmseg's in the same order: bit for bit equal logits. The
    # optimised variants fold BN and run channels_last (and Winograd), onnxruntime runs its
    # own kernels: rounding relative to the largest logit.
    assert inference['max_abs_diff']['ours'] == 0.0
    for name in variants - {'reference', 'ours'}:
        check_relative(inference['max_abs_diff'][name], inference['logit_abs_max'],
                       WINOGRAD_DEEP if 'winograd' in name else DEEP, f'{name} vs reference')
    ort = inference['onnxruntime']
    assert ort['exported'] == 'ours_optimized' and ort['export_and_load_s'] > 0
    check_relative(ort['max_abs_diff_vs_exported'], inference['logit_abs_max'], DEEP,
                   'onnxruntime vs the optimised model it was exported from')
    assert inference['shape'] == [1, 3, 64, 96]
    train = data['train']
    assert set(train['min_s']) == {'ours', 'reference', 'ours_winograd'}
    assert train['shape'] == [2, 3, 32, 32]
    assert set(train['speedup']['ours']) == {'min', 'median'}
    assert data['peak_rss_mb_after_train'] >= data['peak_rss_mb_after_inference'] > 0
    printed = capsys.readouterr().out
    assert 'speedup vs reference' in printed.split('  onnxruntime ')[1].splitlines()[0]
    assert (f'  onnxruntime {ort["version"]} (export + session '
            f'{ort["export_and_load_s"]:.1f} s) vs ours_optimized: max|diff| '
            f'{ort["max_abs_diff_vs_exported"]:.2e}') in printed


def test_onnxruntime_alone_exports_the_plain_model(config_pair):
    ours, _ = config_pair
    report = _run([str(ours), '--shape', '1', '3', '64', '64', '--repeats', '1',
                   '--onnxruntime', '--train-repeats', '0', '--threads', '1'])
    inference = report['inference']
    assert set(inference['min_s']) == {'ours', 'onnxruntime'}
    assert 'speedup' not in inference  # no reference: no ratios
    assert inference['onnxruntime']['exported'] == 'ours'
    check_relative(inference['max_abs_diff']['onnxruntime'], inference['logit_abs_max'], DEEP,
                   'onnxruntime vs ours')


def test_bad_flags(config_pair, capsys):
    ours, _ = config_pair
    with pytest.raises(SystemExit):
        benchmark.parse_args([str(ours), '--repeats', '0'])
    assert '--repeats=0 must be >= 1' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args([str(ours), '--onnxruntime', '--device', 'cuda'])
    assert "--onnxruntime runs on the CPU: it needs --device cpu, got 'cuda'" in (
        capsys.readouterr().err)


def test_with_cp_memory_probes_with_and_without(config_pair, monkeypatch):
    """The CLI's wiring of the probes (run here in-process; the separate process is tested in
    tests/benchmark/test_memory.py)."""
    from mmseg_hrplus.benchmark.memory import memory_probe
    calls = []

    def in_process(config, with_cp, batch, shape, device, winograd, threads, cwd):
        calls.append((config, with_cp, batch, tuple(shape), device, winograd, threads))
        return memory_probe(config, with_cp, batch, shape, device, winograd)

    monkeypatch.setattr(benchmark, 'run_memory_probe', in_process)
    ours, ref = config_pair
    report = _run([str(ours), '--reference', str(ref), '--skip-inference', '--train-repeats',
                   '0', '--with-cp-memory', '--train-batch', '2', '--train-shape', '32', '32',
                   '--threads', '1'])
    assert calls == [(c, cp, 2, (32, 32), 'cpu', False, 1)
                     for c in (str(ours), str(ref)) for cp in (False, True)]
    memory = report['with_cp_memory']
    assert set(memory) == {'ours', 'reference'}
    for probes in memory.values():
        assert (probes['without']['with_cp'], probes['with_cp']['with_cp']) == (False, True)
        assert probes['ratio'] == (probes['with_cp']['step_peak_mb']
                                   / probes['without']['step_peak_mb'])
