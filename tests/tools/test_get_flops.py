"""tools/analysis_tools/get_flops.py and mmseg_hrplus.benchmark.flops: counts of the inference
graph (no auxiliary heads)."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmseg_hrplus.benchmark import flops
from tests.helpers.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
get_flops = load_tool('analysis_tools/get_flops.py')

BISENETV2 = REPO / 'configs' / 'bisenetv2' / 'bisenetv2_cityscapes-1024x1024.py'


def test_bisenetv2_params_are_the_inference_model_and_flops_scale_with_area():
    cfg = Config.fromfile(str(BISENETV2))
    model = flops.build_inference_model(cfg)
    assert model.auxiliary_head is None and not model.training
    inference_params = sum(p.numel() for p in model.parameters())

    small = flops.count(str(BISENETV2), (64, 128))
    large = flops.count(str(BISENETV2), (128, 256))
    assert small['params'] == inference_params == large['params']
    # mmseg's BiSeNetV2 without its auxiliary heads has 3.3589M parameters (same layers)
    assert round(inference_params / 1e6, 4) == 3.3589
    # convolutions dominate: 4x the pixels, 4x the FLOPs up to the few global-pool terms
    assert large['flops'] / small['flops'] == pytest.approx(4.0, rel=0.01)


def test_table_lists_the_main_configs_and_cli_prints_counts(capsys):
    configs = get_flops.table_configs()
    assert configs[0] == 'configs/hrnet_w48_cityscapes.py'
    assert set(get_flops.REFERENCE_FIGURES) == set(configs)
    text = get_flops.main([str(BISENETV2), '--shape', '64', '128'])
    params = sum(p.numel() for p in flops.build_inference_model(
        Config.fromfile(str(BISENETV2))).parameters())
    assert f'params: {params / 1e6:.4f} M ({params})' in text
    out = capsys.readouterr().out
    assert 'input: 1x3x64x128' in out
    assert 'Unsupported operator' not in out  # mmengine's per-op warnings are silenced


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match=r'shape=\(0, 128\) must be two positive ints'):
        flops.count(str(BISENETV2), (0, 128))
