"""Post-processing of a segmentor's predictions: the dense CRF of DeepLabv2 (used by the
``WithDenseCRF`` segmentor config, :mod:`mmseg_hrplus.models.segmentors.with_dense_crf`)."""
from .dense_crf import DenseCRF

__all__ = ['DenseCRF']
