"""Registered backbones."""
