"""Inference helpers."""
from .optimize import optimize_for_inference

__all__ = ['optimize_for_inference']
