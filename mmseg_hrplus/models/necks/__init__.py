"""Registered necks."""
from .hrnetv2p import HRNetV2pNeck  # noqa: F401
