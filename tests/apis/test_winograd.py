"""Winograd F(m x m, 3x3) convolution: equal to F.conv2d up to float rounding, and its use
in optimize_for_inference."""
import pytest
import torch
import torch.nn as nn

from mmseg_hrplus.apis.winograd import (WinogradConv2d, is_winograd_eligible,
                                        winograd_convs)

from mmseg_hrplus.testing import relative_error

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('tile,tolerance', [(2, 2e-5), (4, 2e-4)])
@pytest.mark.parametrize('shape', [
    (1, 16, 8, 12),    # whole tiles
    (2, 8, 7, 13),     # partial last tiles, batch 2
    (1, 4, 1, 1),      # a single pixel
])
@pytest.mark.parametrize('channels_last', [True, False])
def test_equals_direct_conv(tile, tolerance, shape, channels_last):
    torch.manual_seed(0)
    n, c, h, w = shape
    conv = nn.Conv2d(c, 2 * c + 1, 3, padding=1)
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fast = WinogradConv2d.from_conv(conv, tile)
    with torch.no_grad():
        expected, got = conv(x), fast(x)
    assert got.shape == (n, 2 * c + 1, h, w)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert relative_error(got, expected) < tolerance
    # Not a copy of the conv: the module holds the transformed filters only.
    assert fast.filters.shape == ((tile + 2)**2, c, 2 * c + 1)


def test_bias_free_conv_and_wide_random_weights():
    torch.manual_seed(1)
    conv = nn.Conv2d(96, 96, 3, padding=1, bias=False)
    x = torch.randn(1, 96, 20, 36)
    with torch.no_grad():
        error = relative_error(WinogradConv2d.from_conv(conv)(x), conv(x))
    assert 0 < error < 2e-5  # rounding differs from the direct conv, but only just


def test_eligibility_and_errors():
    assert is_winograd_eligible(nn.Conv2d(4, 4, 3, padding=1))
    for conv in (nn.Conv2d(4, 4, 3, padding=1, stride=2), nn.Conv2d(4, 4, 1),
                 nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 4, 3, padding=1,
                                                                      groups=2),
                 nn.Conv2d(4, 4, 3, padding=1, padding_mode='reflect')):
        assert not is_winograd_eligible(conv)
        with pytest.raises(ValueError, match='3x3 nn.Conv2d with stride 1'):
            WinogradConv2d.from_conv(conv)
    with pytest.raises(ValueError, match=r'tile=3 is not supported; allowed values: 2, 4'):
        WinogradConv2d.from_conv(nn.Conv2d(4, 4, 3, padding=1), tile=3)
    with pytest.raises(ValueError, match='expects 4 input channels, got 5'):
        WinogradConv2d.from_conv(nn.Conv2d(4, 4, 3, padding=1))(torch.zeros(1, 5, 4, 4))


def test_winograd_convs_respects_min_channels():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
                          nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.Conv2d(16, 16, 1))
    assert winograd_convs(model, min_channels=16) == 1
    assert [type(m).__name__ for m in model] == ['Conv2d', 'WinogradConv2d', 'Conv2d',
                                                 'Conv2d']
