"""mmseg_hrplus: HRNet, DeepLabv2 and BiSeNetV2 components for MMSegmentation and MMDetection.

Importing the package registers every component in :data:`mmseg_hrplus.registry.MODELS` and
calls :func:`mmseg_hrplus.setup` (see :mod:`mmseg_hrplus.checkpoint.setup`: every checkpoint that
mmengine reads goes through our safe reader). Set ``MMSEG_HRPLUS_NO_SETUP=1`` to opt out.
"""
from . import checkpoint, engine  # noqa: F401  (safe checkpoint reader; hooks, CPU DDP wrapper)
from .checkpoint.setup import setup, setup_on_import
from .registry import MODELS
from .version import __version__
from . import models  # noqa: F401,E402  (registers the components)

setup_on_import()

__all__ = ['MODELS', '__version__', 'setup']
