"""mmseg_hrplus.benchmark.weights: BN calibration gives the statistics of its batch; both
models get the same weights, directly or through the BiSeNetV2 converter; unrelated models are
refused."""
import pytest
import torch
import torch.nn as nn

from mmseg_hrplus.benchmark.build import build_model
from mmseg_hrplus.benchmark.weights import calibrate_bn, share_weights
from tests.helpers.float_bounds import SHALLOW, assert_close_relative
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs

pytestmark = pytest.mark.usefixtures('one_thread')


class ConvBN(nn.Module):
    """conv -> BN, called like a segmentor (``mode='tensor'``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4, momentum=0.3)

    def forward(self, x, mode='tensor'):
        return self.bn(self.conv(x))


def test_calibrate_bn_sets_the_batch_statistics_and_restores_the_model():
    model = ConvBN().eval()
    torch.manual_seed(3)
    calibrate_bn(model, (1, 3, 8, 10))  # the batch is made 2 images
    torch.manual_seed(3)
    with torch.no_grad():
        y = model.conv(torch.randn(2, 3, 8, 10))
    assert_close_relative(model.bn.running_mean, y.mean(dim=(0, 2, 3)), SHALLOW, 'mean')
    assert_close_relative(model.bn.running_var, y.var(dim=(0, 2, 3), unbiased=True), SHALLOW,
                          'var')
    assert not model.training and model.bn.momentum == 0.3


def test_share_weights_loads_ours_into_the_reference(tmp_path):
    ours_cfg, ref_cfg = write_tiny_hrnet_fcn_configs(tmp_path)
    ours, ref = build_model(str(ours_cfg)), build_model(str(ref_cfg))
    assert share_weights(ours, ref, (2, 3, 64, 64)) == 'ours -> reference (state dict, strict)'
    ref_state = ref.state_dict()
    for key, value in ours.state_dict().items():
        assert torch.equal(ref_state[key], value), key
    # calibrated: not the initial statistics (mean 0)
    assert float(ours.backbone.stage4[0].branches[0][0].bn1.running_mean.abs().max()) > 0


def test_share_weights_through_the_bisenetv2_converter(repo_root):
    ours = build_model(str(repo_root / 'configs' / 'bisenetv2' /
                           'bisenetv2_cityscapes-1024x1024.py'))
    ref = build_model('mmseg::bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py')
    how = share_weights(ours, ref, (2, 3, 64, 64))
    assert how == 'reference -> ours (convert_mmseg_bisenetv2, strict)'
    ours.eval(), ref.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x, mode='tensor'), ref(x, mode='tensor'))


def test_share_weights_refuses_unrelated_models(tmp_path):
    ours_cfg, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    model = build_model(str(ours_cfg))
    other = nn.Sequential(nn.Conv2d(3, 3, 1))
    with pytest.raises(RuntimeError, match=r'(?s)cannot give the two models the same weights: '
                                           r'direct: .* \| convert_mmseg_bisenetv2: '):
        share_weights(model, other, (2, 3, 64, 64))
