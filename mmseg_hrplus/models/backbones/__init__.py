"""Registered backbones."""
from .dilated_resnet import DilatedResNet  # noqa: F401
from .hrnet import HRNet  # noqa: F401
from .bisenetv2 import BiSeNetV2  # noqa: F401
