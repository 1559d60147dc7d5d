"""Segmentors: DeepLabv2's multi-scale inference and the dense-CRF refinement of any segmentor."""
from .msc_encoder_decoder import MSCEncoderDecoder
from .with_dense_crf import enable_dense_crf, with_dense_crf

__all__ = ['MSCEncoderDecoder', 'enable_dense_crf', 'with_dense_crf']
