from .contract import check_decode_head, check_model_contract
from .feature_spec import FeatureSpec, check_in_channels, spec_summary
from .memory_format import is_channels_last

__all__ = ['FeatureSpec', 'check_decode_head', 'check_in_channels', 'check_model_contract',
           'is_channels_last', 'spec_summary']
