"""Components registered in :data:`mmseg_hrplus.registry.MODELS`."""
from . import backbones, decode_heads, necks  # noqa: F401
