"""Registered decode_heads."""
from .aspp_head import ASPPHead  # noqa: F401
