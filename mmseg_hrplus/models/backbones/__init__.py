"""Registered backbones."""
from .dilated_resnet import DilatedResNet  # noqa: F401
