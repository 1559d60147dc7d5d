"""HRNet fusion ablation (research code, not part of the library): see README.md."""
