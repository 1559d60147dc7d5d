"""tools/benchmark.py in-process on a tiny HRNet+FCN pair (ours vs mmseg's HRNet, same
weights): the JSON has the timing, ratio and difference fields, and the logits agree."""
import json
import sys
from pathlib import Path

import pytest
import torch

from mmseg_hrplus.testing import tiny_hrnet_extra

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
import benchmark  # noqa: E402
from float_bounds import DEEP, WINOGRAD_DEEP, check_relative  # noqa: E402

EXTRA = tiny_hrnet_extra()
CONFIG = """
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3),
    pretrained={pretrained!r},
    backbone=dict(type={backbone!r}, norm_cfg=norm_cfg, extra={extra!r}),
    decode_head=dict(type='FCNHead', in_channels=[4, 8, 16, 32], in_index=(0, 1, 2, 3),
                     channels=60, input_transform='resize_concat', kernel_size=1, num_convs=1,
                     concat_input=False, dropout_ratio=-1, num_classes=5, norm_cfg=norm_cfg,
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
"""


@pytest.fixture
def config_pair(tmp_path):
    ours = tmp_path / 'ours.py'
    ref = tmp_path / 'ref.py'
    # the reference names a checkpoint that does not exist: the tool must not load it
    ours.write_text(CONFIG.format(backbone='mmseg_hrplus.HRNet', extra=EXTRA, pretrained=None))
    ref.write_text(CONFIG.format(backbone='HRNet', extra=EXTRA,
                                 pretrained=str(tmp_path / 'missing.pth')))
    return ours, ref


def test_benchmark_json(config_pair, tmp_path):
    ours, ref = config_pair
    out = tmp_path / 'bench' / 'out.json'
    threads = torch.get_num_threads()
    try:
        report = benchmark.main([
            str(ours), '--reference', str(ref), '--shape', '1', '3', '64', '96',
            '--repeats', '1', '--optimize', '--optimize-reference', '--factorize-head', 'both',
            '--winograd', '--train-winograd', '--train-batch', '2', '--train-shape', '32', '32',
            '--threads', '1',
            '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(report))
    assert data['weights'] == 'ours -> reference (state dict, strict)'
    inference = data['inference']
    variants = {'ours', 'ours_optimized', 'ours_optimized_factorized', 'reference',
                'reference_optimized', 'ours_optimized_winograd'}
    assert set(inference['min_s']) == variants
    assert all(len(t) == 1 and t[0] > 0 for t in inference['times_s'].values())
    for name in variants - {'reference'}:
        for stat in ('min', 'median'):
            speedup = inference['speedup'][name][stat]
            ratio = inference['time_ratio'][name][stat]
            assert speedup > 0 and abs(speedup * ratio - 1) < 1e-9
    assert inference['logit_abs_max'] > 1e-2  # calibrated BN: the comparison is not vacuous
    # Our HRNet runs the ops of mmseg's in the same order: bit for bit equal logits. The
    # optimised variants fold BN and run channels_last (and Winograd): rounding relative to
    # the largest logit.
    assert inference['max_abs_diff']['ours'] == 0.0
    for name in variants - {'reference', 'ours'}:
        check_relative(inference['max_abs_diff'][name], inference['logit_abs_max'],
                       WINOGRAD_DEEP if 'winograd' in name else DEEP, f'{name} vs reference')
    assert inference['shape'] == [1, 3, 64, 96]
    train = data['train']
    assert set(train['min_s']) == {'ours', 'reference', 'ours_winograd'}
    assert train['shape'] == [2, 3, 32, 32]
    assert set(train['speedup']['ours']) == {'min', 'median'}
    assert data['peak_rss_mb_after_train'] >= data['peak_rss_mb_after_inference'] > 0


def test_share_weights_refuses_unrelated_models(config_pair):
    ours, _ = config_pair
    model = benchmark.build_model(str(ours), 'cpu')
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(RuntimeError, match='cannot give the two models the same weights'):
        benchmark.share_weights(model, other, (2, 3, 64, 64), 'cpu')


def test_resolve_config_errors():
    with pytest.raises(FileNotFoundError, match="config 'nope.py' does not exist"):
        benchmark.resolve_config('nope.py')
    with pytest.raises(FileNotFoundError, match=r"config 'mmseg::nope/x.py': no .*nope"):
        benchmark.resolve_config('mmseg::nope/x.py')
    assert Path(benchmark.resolve_config(
        'mmseg::hrnet/fcn_hr48_4xb2-80k_cityscapes-512x1024.py')).is_file()


@pytest.mark.parametrize('winograd', [False, True])
def test_memory_probe_in_process(config_pair, winograd):
    ours, _ = config_pair
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        result = benchmark.memory_probe(str(ours), True, 2, (32, 32), 'cpu', winograd)
    finally:
        torch.set_num_threads(threads)
    assert result['with_cp'] is True
    assert result['before_mb'] > 0
    assert result['peak_mb'] >= result['before_mb']
    assert result['step_peak_mb'] == result['peak_mb'] - result['before_mb']
    if Path('/proc/self/clear_refs').exists():
        assert result['method'] == 'VmHWM after clear_refs'
