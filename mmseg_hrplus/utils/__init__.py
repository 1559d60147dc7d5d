"""Helpers below every other layer of the package: they import torch and the standard library,
never the rest of ``mmseg_hrplus``."""
