"""One entry point for every checkpoint format we convert: ``convert_file(SOURCE, SRC, DST)``.

A source format is a function registered with :func:`register_source`. It takes what the
original file holds (read by the safe reader) and returns a :class:`Converted`: our state dict,
the keys it dropped on purpose with the reason (an ImageNet classifier, a training-only loss
weight), and meta (classes, ...). Every source key is either used, or listed in ``dropped``;
any other key makes the function raise :class:`ConversionError`, so a wrong file fails here
instead of loading half-way under ``strict=False``.

Written files are mmengine checkpoints: ``{'state_dict': ..., 'meta': {'source': SOURCE,
'original_file': <file name>, 'dropped_keys': {...}, ...}}``.
"""
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
from torch import Tensor

from .errors import ConversionError


@dataclass
class Converted:
    """What a source converter returns.

    Attributes:
        state_dict: our keys -> tensors (not copies of the source's).
        dropped: source key -> why it has no counterpart (reported, never silent).
        meta: extra meta for the written checkpoint (e.g. ``classes``).
    """
    state_dict: Dict[str, Tensor]
    dropped: Dict[str, str] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceFormat:
    name: str
    description: str
    convert: Callable[..., Converted]


SOURCES: Dict[str, SourceFormat] = {}


def register_source(name: str, description: str) -> Callable:
    """Decorator: register ``convert(checkpoint, **options) -> Converted`` for ``name``."""
    def wrap(convert: Callable[..., Converted]) -> Callable[..., Converted]:
        if name in SOURCES:
            raise KeyError(f'converter source {name!r} is already registered')
        SOURCES[name] = SourceFormat(name, description, convert)
        return convert
    return wrap


def source_names() -> List[str]:
    _import_all_sources()
    return sorted(SOURCES)


def get_source(name: str) -> SourceFormat:
    _import_all_sources()
    if name not in SOURCES:
        raise ValueError(f'unknown converter source {name!r}; choose one of: '
                         f'{", ".join(sorted(SOURCES))}')
    return SOURCES[name]


def _import_all_sources() -> None:
    """Import every module of this package, so that their sources are registered."""
    import importlib
    import pkgutil
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f'{__package__}.{info.name}')


# ------------------------------------------------------------------------------------------
# Helpers the source converters share
# ------------------------------------------------------------------------------------------

def unwrap_state_dict(checkpoint: Mapping, wrappers: Iterable[str] = ('state_dict', 'model'),
                      prefixes: Iterable[str] = ('module.',)) -> 'OrderedDict[str, Any]':
    """The state dict inside a training checkpoint, with wrapper prefixes stripped.

    Args:
        checkpoint: a state dict, or a dict holding one under one of ``wrappers``.
        wrappers: keys under which training scripts keep the weights.
        prefixes: key prefixes added by wrappers (``module.`` of DataParallel/DDP); each is
            stripped when every key carries it.
    """
    state = checkpoint
    for wrapper in wrappers:
        inner = state.get(wrapper) if isinstance(state, Mapping) else None
        if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
            state = inner
            break
    if not isinstance(state, Mapping):
        raise ConversionError(f'expected a state dict, got {type(state).__name__}')
    state = OrderedDict(state)
    for prefix in prefixes:
        if state and all(key.startswith(prefix) for key in state):
            state = OrderedDict((key[len(prefix):], value) for key, value in state.items())
    return state


def first_keys(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    return ', '.join(keys[:limit]) + (f' ... ({len(keys) - limit} more)' if len(keys) > limit
                                      else '')


def shape_text(shape: Sequence[int]) -> str:
    """``(1024, 128, 3, 3)``; a 1-d shape is ``(19)``."""
    return '(' + ', '.join(str(int(s)) for s in shape) + ')'


def wrong_shapes(tensors: Mapping[str, Tensor], expected: Mapping[str, Sequence[int]],
                 name: Optional[Callable[[str], str]] = None) -> List[str]:
    """Describe every tensor whose shape is not the expected one.

    Args:
        tensors: key -> tensor; keys absent from ``expected`` are not checked here (callers
            refuse them separately, with their own wording).
        expected: key -> shape.
        name: how to name a key in the message (e.g. its key in the source file); the key
            itself by default.

    Returns:
        ``['<name> (1024, 256, 3, 3) (expected (1024, 128, 3, 3))', ...]``, in ``tensors``
        order; empty when every shape fits.
    """
    name = name or str
    return [f'{name(key)} {shape_text(value.shape)} (expected {shape_text(expected[key])})'
            for key, value in tensors.items()
            if key in expected and tuple(value.shape) != tuple(expected[key])]


def refuse_unknown(source: str, unknown: List[str], expected: str) -> None:
    """Raise :class:`ConversionError` if any key was neither used nor dropped."""
    if unknown:
        raise ConversionError(f'{source}: {len(unknown)} keys are not part of {expected}: '
                              f'{first_keys(unknown)}')


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def read_source_file(src: str) -> Any:
    """A source file read by the safe reader: a local path, an ``http(s)://`` URL, or the name
    of a published file (:mod:`.published`) that is not a local file, fetched from its URL."""
    if src.startswith(('http://', 'https://')):
        from ..checkpoint import load_checkpoint_from_url
        return load_checkpoint_from_url(src, map_location='cpu')
    if not osp.exists(src):
        from .published import fetch_published, published_file
        known = published_file(src)
        if known is not None:
            return fetch_published(known)
    from ..checkpoint import read_checkpoint
    return read_checkpoint(src, map_location='cpu')


#: What ``convert_file`` writes: an mmengine ``.pth`` or a safetensors file.
OUTPUT_FORMATS = ('pth', 'safetensors')


def output_format_for(dst: str, requested: Optional[str] = None) -> str:
    """``requested`` if given (one of :data:`OUTPUT_FORMATS`), else from ``dst``'s suffix."""
    if requested is None:
        return 'safetensors' if dst.endswith('.safetensors') else 'pth'
    if requested not in OUTPUT_FORMATS:
        raise ValueError(f'output format {requested!r} is not one of: '
                         f'{", ".join(OUTPUT_FORMATS)}')
    return requested


def convert_file(source: str, src: str, dst: Optional[str] = None,
                 output_format: Optional[str] = None, **options: Any) -> Converted:
    """Convert ``src`` (a file of format ``source``) and write ``dst``, if given.

    Args:
        output_format: ``'pth'`` (an mmengine checkpoint) or ``'safetensors'`` (weights and
            meta, no pickle); by default from ``dst``'s suffix.

    Raises:
        ValueError: ``source`` or ``output_format`` is not a known one.
        ConversionError: the file does not fit the format; names the file and the source.
        mmseg_hrplus.checkpoint.CheckpointError: the file is damaged or unsafe.
    """
    written_as = output_format_for(dst or '', output_format)
    fmt = get_source(source)
    checkpoint = read_source_file(src)
    try:
        converted = fmt.convert(checkpoint, **options)
    except ConversionError as err:
        raise ConversionError(f'{src} is not a {source} checkpoint ({fmt.description}): '
                              f'{err}') from None
    if dst is not None:
        write_converted(converted, source, src, dst, written_as)
    return converted


def write_converted(converted: Converted, source: str, src: str, dst: str,
                    output_format: Optional[str] = None) -> None:
    """Write ``converted`` (of ``src``, a ``source`` file) to ``dst``, with its meta: the
    source, the original file name and the keys dropped on purpose."""
    written_as = output_format_for(dst, output_format)
    meta = dict(converted.meta)
    meta.update(source=source, original_file=osp.basename(src),
                dropped_keys=dict(converted.dropped))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    if written_as == 'safetensors':
        from ..checkpoint import save_safetensors
        save_safetensors(dst, converted.state_dict, meta)
    else:
        torch.save({'state_dict': converted.state_dict, 'meta': meta}, dst)
