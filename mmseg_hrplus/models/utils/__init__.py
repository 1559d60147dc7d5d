from .contract import check_decode_head, check_model_contract
from .feature_spec import FeatureSpec, check_in_channels, spec_summary

__all__ = ['FeatureSpec', 'check_decode_head', 'check_in_channels', 'check_model_contract',
           'spec_summary']
