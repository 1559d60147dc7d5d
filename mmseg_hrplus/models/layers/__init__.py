"""Building blocks registered for use inside other components' configs (e.g. ``conv_cfg``)."""
from .winograd import WinogradConv2d, winograd_conv3x3

__all__ = ['WinogradConv2d', 'winograd_conv3x3']
