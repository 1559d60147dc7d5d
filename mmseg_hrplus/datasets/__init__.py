"""Dataset helpers (synthetic data for the demo and tests)."""
