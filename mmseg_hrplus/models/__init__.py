"""Components registered in :data:`mmseg_hrplus.registry.MODELS`."""
from . import backbones, decode_heads, layers, necks  # noqa: F401
