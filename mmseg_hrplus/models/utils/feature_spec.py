"""The output contract of a backbone: channels and stride of every returned feature map.

Every backbone of this package exposes ``out_specs``, a tuple of :class:`FeatureSpec`, one per
tensor its ``forward`` returns, in order. Heads and necks check their ``in_channels`` /
``in_index`` against it with :func:`check_in_channels`, so a head built for the wrong backbone
fails with a message instead of a shape error deep inside ``forward``.
"""
from typing import NamedTuple, Sequence, Tuple, Union


class FeatureSpec(NamedTuple):
    """One output of a backbone: ``channels`` at ``1/stride`` of the input resolution."""

    channels: int
    stride: int


def spec_summary(specs: Sequence[FeatureSpec]) -> str:
    """``'[0: 18ch @1/4, 1: 36ch @1/8]'``: a readable list for error messages."""
    return '[' + ', '.join(f'{i}: {s.channels}ch @1/{s.stride}' for i, s in enumerate(specs)) + ']'


def select_specs(owner: str, in_index: Sequence[int],
                 specs: Sequence[FeatureSpec]) -> Tuple[FeatureSpec, ...]:
    """The specs picked by ``in_index`` (negatives allowed), in that order.

    Raises:
        ValueError: naming ``owner``, the first index out of range and the outputs there are.
    """
    n = len(specs)
    for idx in in_index:
        if not -n <= idx < n:
            raise ValueError(f'{owner}: in_index {idx} is out of range for a backbone with '
                             f'{n} outputs {spec_summary(specs)}')
    return tuple(specs[idx] for idx in in_index)


def check_in_channels(owner: str, in_channels: Union[int, Sequence[int]],
                      in_index: Union[int, Sequence[int]],
                      specs: Sequence[FeatureSpec]) -> Tuple[FeatureSpec, ...]:
    """Check that ``in_channels`` matches the backbone outputs picked by ``in_index``.

    Args:
        owner: name of the checking component, for the message (e.g. ``'BGAHead'``).
        in_channels: what the component was configured with (int or one per index).
        in_index: which backbone outputs it reads (int or sequence; negatives allowed).
        specs: the backbone's ``out_specs``.

    Returns:
        The selected specs, in ``in_index`` order.

    Raises:
        ValueError: naming both sides when an index is out of range or channels differ.
    """
    indices = [in_index] if isinstance(in_index, int) else list(in_index)
    channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
    selected = select_specs(owner, indices, specs)
    if len(channels) != len(selected):
        raise ValueError(f'{owner}: in_channels={channels} has {len(channels)} entries but '
                         f'in_index={indices} selects {len(selected)} outputs')
    got = [s.channels for s in selected]
    if got != channels:
        raise ValueError(f'{owner}: in_channels={channels} (in_index={indices}) does not match '
                         f'the backbone outputs, which have channels {got}; backbone outputs: '
                         f'{spec_summary(specs)}')
    return tuple(selected)
