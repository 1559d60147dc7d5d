"""Registered necks."""
