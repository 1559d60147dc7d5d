"""Checkpoint converters: one module per source format, registered in
:mod:`mmseg_hrplus.converters.registry` (``tools/model_converters/convert.py SOURCE SRC DST``)."""
from .registry import (ConversionError, Converted, SOURCES, convert_file, get_source,
                       register_source, source_names)

__all__ = ['ConversionError', 'Converted', 'SOURCES', 'convert_file', 'get_source',
           'register_source', 'source_names']
