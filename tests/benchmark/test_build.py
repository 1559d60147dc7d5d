"""mmseg_hrplus.benchmark.build: config paths, no checkpoint loading, backbone overrides."""
from pathlib import Path

import pytest

from mmseg_hrplus.benchmark.build import WINOGRAD_CONV_CFG, build_model, resolve_config
from mmseg_hrplus.models.layers import WinogradConv2d
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs


def test_resolve_config_errors():
    with pytest.raises(FileNotFoundError, match="config 'nope.py' does not exist"):
        resolve_config('nope.py')
    with pytest.raises(FileNotFoundError, match=r"config 'mmseg::nope/x.py': no .*nope"):
        resolve_config('mmseg::nope/x.py')
    assert Path(resolve_config(
        'mmseg::hrnet/fcn_hr48_4xb2-80k_cityscapes-512x1024.py')).is_file()


def test_build_model_loads_no_checkpoint_and_overrides_the_backbone(tmp_path):
    _, ref = write_tiny_hrnet_fcn_configs(tmp_path)  # names a checkpoint that does not exist
    model = build_model(str(ref), with_cp=True)
    assert type(model.backbone).__name__ == 'HRNet' and model.backbone.with_cp
    assert not any('SyncBatchNorm' in type(m).__name__ for m in model.modules())
    ours, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    winograd = build_model(str(ours), conv_cfg=WINOGRAD_CONV_CFG)
    assert any(isinstance(m, WinogradConv2d) for m in winograd.backbone.modules())
