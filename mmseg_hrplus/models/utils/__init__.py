from .feature_spec import FeatureSpec, check_in_channels, spec_summary

__all__ = ['FeatureSpec', 'check_in_channels', 'spec_summary']
