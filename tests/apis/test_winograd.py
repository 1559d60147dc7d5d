"""The inference-time Winograd switch (apis.winograd) on plain conv stacks."""
import pytest
import torch
import torch.nn as nn

from float_bounds import WINOGRAD_ONE_CONV, assert_close_relative
from mmseg_hrplus.apis.winograd import is_winograd_eligible, winograd_convs
from mmseg_hrplus.models.layers import WinogradConv2d

pytestmark = pytest.mark.usefixtures('one_thread')


def test_eligibility():
    assert is_winograd_eligible(nn.Conv2d(4, 4, 3, padding=1))
    for conv in (nn.Conv2d(4, 4, 3, padding=1, stride=2), nn.Conv2d(4, 4, 1),
                 nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                 nn.Conv2d(4, 4, 3, padding=1, groups=2),
                 nn.Conv2d(4, 4, 3, padding=1, padding_mode='reflect')):
        assert not is_winograd_eligible(conv)
    with pytest.raises(ValueError, match=r'tile=3 is not supported; allowed values: 2, 4'):
        winograd_convs(nn.Conv2d(4, 4, 3, padding=1), tile=3)


def test_winograd_convs_respects_min_channels_and_shares_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
                          nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.Conv2d(16, 16, 1))
    x = torch.randn(1, 8, 12, 20)
    with torch.no_grad():
        expected = model(x)
    weight = model[1].weight
    assert winograd_convs(model, min_channels=16) == 1
    assert [type(m).__name__ for m in model] == ['Conv2d', 'WinogradConv2d', 'Conv2d',
                                                 'Conv2d']
    assert isinstance(model[1], WinogradConv2d) and model[1].weight is weight
    with torch.no_grad():
        # one F(4x4) conv over 16 channels; the other convs stay direct in both
        assert_close_relative(model(x), expected, WINOGRAD_ONE_CONV[4], 'one Winograd conv')
