"""Building blocks registered for use inside other components' configs (e.g. ``conv_cfg``)."""
from .winograd import (WinogradConv2d, clear_winograd_decisions, is_winograd_eligible,
                       winograd_conv3x3, winograd_decision_records, winograd_decisions)

__all__ = [
    'WinogradConv2d', 'winograd_conv3x3', 'is_winograd_eligible', 'winograd_decisions',
    'winograd_decision_records', 'clear_winograd_decisions'
]
