"""The converters' one error type (re-exported by :mod:`.registry` and the package)."""


class ConversionError(ValueError):
    """A file that is not of the named source format, or converted weights that do not fit a
    config; the message names the source, the file (when converting a file) or the config, and
    the first keys or shapes that do not fit."""
