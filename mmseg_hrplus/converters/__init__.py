"""Checkpoint key converters."""
