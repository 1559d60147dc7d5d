"""mmseg_hrplus: HRNet, DeepLabv2 and BiSeNetV2 components for MMSegmentation and MMDetection.

Importing the package activates :mod:`mmseg_hrplus.compat` (safe checkpoint loading on
torch>=2.6, the CPU distributed wrapper) and registers every component in
:data:`mmseg_hrplus.registry.MODELS`.
"""
from . import compat  # noqa: F401  (side effects: safe globals, model wrapper)
from . import checkpoint, engine  # noqa: F401  (checkpoint errors naming the file; hooks)
from .registry import MODELS
from .version import __version__
from . import models  # noqa: F401,E402  (registers the components)

__all__ = ['MODELS', '__version__']
