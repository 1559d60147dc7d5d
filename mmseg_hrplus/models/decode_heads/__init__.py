"""Registered decode_heads."""
