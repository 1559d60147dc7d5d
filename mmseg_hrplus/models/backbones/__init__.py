"""Registered backbones."""
from .dilated_resnet import DilatedResNet  # noqa: F401
from .hrnet import HRNet  # noqa: F401
