"""tools/benchmark.py reports the CPU it ran on and, with --winograd, the autotune decisions
of the Winograd variant (tiny HRNet+FCN, no reference)."""
import json
from pathlib import Path

import torch

from mmseg_hrplus.utils.cpu_info import cpu_info
from mmseg_hrplus.models.layers.winograd import AUTOTUNE_MARGIN
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs
from tests.helpers.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
benchmark = load_tool('benchmark.py')


def test_benchmark_reports_cpu_and_winograd_decisions(tmp_path, monkeypatch, capsys):
    config, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    # the tiny HRNet is 4-32 channels wide: let Winograd (and its autotune) take them all
    optimize = benchmark.optimize_for_inference

    def optimize_narrow(model, winograd=None, **kwargs):
        return optimize(model, winograd=winograd and dict(min_channels=4), **kwargs)

    monkeypatch.setattr(benchmark, 'optimize_for_inference', optimize_narrow)
    out = tmp_path / 'out.json'
    threads = torch.get_num_threads()
    try:
        benchmark.main([str(config), '--shape', '1', '3', '64', '96', '--repeats', '1',
                        '--winograd', '--train-repeats', '0', '--threads', '1',
                        '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    expected = cpu_info()
    for key in ('model', 'isa', 'torch_cpu_capability', 'onednn'):
        assert data['cpu'][key] == expected[key], key
    assert data['cpu']['threads'] == 1
    printed = capsys.readouterr().out
    assert f'CPU: {data["cpu"]["summary"]}' in printed
    decisions = data['inference']['winograd_decisions']
    # tiny HRNet widths 4/8/16/32 at 1/4 .. 1/32 of 64x96, plus the stem's 3x3 convs
    assert {(d['in_channels'], d['height'], d['width']) for d in decisions} >= {
        (4, 16, 24), (8, 8, 12), (16, 4, 6), (32, 2, 3)}
    for d in decisions:
        assert d['choice'] in ('winograd', 'direct') and d['winograd_s'] > 0 < d['direct_s']
        assert (d['choice'] == 'winograd') == (d['winograd_s'] <= AUTOTUNE_MARGIN * d['direct_s'])
        assert f'{d["batch"]}x{d["height"]}x{d["width"]}: {d["choice"]}' in printed
