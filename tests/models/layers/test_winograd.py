"""WinogradConv2d.convert_winograd (the model conversion, as nn.SyncBatchNorm's) and the one
eligibility predicate, on plain conv stacks."""
import pytest
import torch
import torch.nn as nn

from mmseg_hrplus.models.layers import WinogradConv2d, is_winograd_eligible
from tests.helpers.float_bounds import WINOGRAD_ONE_CONV, assert_close_relative

pytestmark = pytest.mark.usefixtures('one_thread')


def test_eligibility():
    assert is_winograd_eligible(nn.Conv2d(4, 4, 3, padding=1))
    assert is_winograd_eligible(nn.Conv2d(16, 24, 3, padding=1), min_channels=16)
    assert not is_winograd_eligible(nn.Conv2d(16, 24, 3, padding=1), min_channels=17)
    assert not is_winograd_eligible(nn.Conv2d(24, 16, 3, padding=1), min_channels=17)
    assert not is_winograd_eligible(nn.Linear(4, 4))
    for conv in (nn.Conv2d(4, 4, 3, padding=1, stride=2), nn.Conv2d(4, 4, 1),
                 nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                 nn.Conv2d(4, 4, 3, padding=1, groups=2),
                 nn.Conv2d(4, 4, 3, padding=1, padding_mode='reflect')):
        assert not is_winograd_eligible(conv)
    with pytest.raises(ValueError, match=r'tile=3 is not supported; allowed values: 2, 4'):
        WinogradConv2d.convert_winograd(nn.Conv2d(4, 4, 3, padding=1), tile=3)
    with pytest.raises(ValueError, match=r'min_channels must be an int >= 1, got 0'):
        WinogradConv2d.convert_winograd(nn.Conv2d(4, 4, 3, padding=1), min_channels=0)


def test_convert_winograd_respects_min_channels_and_shares_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
                          nn.Conv2d(16, 16, 3, padding=1, stride=2),
                          nn.Sequential(nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 3, padding=1)))
    model.eval()
    x = torch.randn(1, 8, 12, 20)
    with torch.no_grad():
        expected = model(x)
    weights = model[1].weight, model[3][1].weight
    converted = WinogradConv2d.convert_winograd(model, min_channels=16, tile=2)
    assert converted is model  # containers are converted in place, as convert_sync_batchnorm
    assert [type(m).__name__ for m in model.modules()] == [
        'Sequential', 'Conv2d', 'WinogradConv2d', 'Conv2d', 'Sequential', 'Conv2d',
        'WinogradConv2d']
    assert model[1].weight is weights[0] and model[3][1].weight is weights[1]
    assert model[1].tile == 2 and model[1].min_channels == 16 and not model[1].autotune
    assert not model[1].training  # keeps the replaced conv's mode
    with torch.no_grad():
        # two F(2x2) convs over 16 channels; the other convs stay direct in both
        assert_close_relative(model(x), expected, 2 * WINOGRAD_ONE_CONV[2], 'Winograd convs')


def test_convert_winograd_of_a_bare_conv_returns_the_new_layer():
    conv = nn.Conv2d(8, 8, 3, padding=1)
    new = WinogradConv2d.convert_winograd(conv, min_channels=8, autotune=True)
    assert type(new) is WinogradConv2d and new.autotune and new.weight is conv.weight
    # an existing WinogradConv2d is kept (its tile and min_channels), autotune switched on
    assert WinogradConv2d.convert_winograd(new, min_channels=1, tile=2) is new
    old = WinogradConv2d(8, 8, 3, padding=1, tile=2, min_channels=4)
    assert WinogradConv2d.convert_winograd(old, autotune=True) is old
    assert old.autotune and old.tile == 2 and old.min_channels == 4
    narrow = nn.Conv2d(4, 4, 3, padding=1)
    assert WinogradConv2d.convert_winograd(narrow, min_channels=8) is narrow
