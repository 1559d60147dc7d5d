"""Components registered in :data:`mmseg_hrplus.registry.MODELS`."""
from . import backbones, decode_heads, layers, necks, postprocess, segmentors  # noqa: F401
