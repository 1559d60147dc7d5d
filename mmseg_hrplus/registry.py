"""The registry of mmseg_hrplus components.

Our ``MODELS`` is a child of mmengine's root ``MODELS`` under its own scope, ``mmseg_hrplus``.
A config of any OpenMMLab scope reaches a component as ``type='mmseg_hrplus.<Name>'``: mmengine
imports ``mmseg_hrplus.registry`` for the prefix and finds this child under the root; the
``locations`` entry then imports the models so that every name is registered. Because the scope
is our own, our names (``HRNet``, ``ASPPHead``, ...) never clash with mmseg's or mmdet's.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmseg_hrplus', locations=['mmseg_hrplus.models'])

__all__ = ['MODELS']
