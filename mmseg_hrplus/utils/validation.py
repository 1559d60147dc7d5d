"""The checks every component applies to its user-given arguments, written once.

Each raises ``ValueError`` with a message that names the argument, the value it got and what is
allowed, and returns the value (so a check can sit in an assignment). ``owner`` prefixes the
message with the component's name where the argument name alone would be ambiguous in a config
(``'DilatedResNet: output_stride=4 is not supported; ...'``).
"""
from typing import Any, Optional, Sequence, Tuple


def _prefix(owner: str) -> str:
    return f'{owner}: ' if owner else ''


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is an ``int`` to Python, not to a config)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _same(value: Any, allowed: Any) -> bool:
    # bools only match bools: 1 is not True, and False is not 0 (frozen_stages, channels_last)
    return isinstance(value, bool) == isinstance(allowed, bool) and value == allowed


def check_choice(name: str, value: Any, allowed: Sequence, owner: str = '') -> Any:
    """``value`` if it is one of ``allowed``, else ``ValueError``:
    ``"{name}={value!r} is not supported; allowed values: 'a', 'b'"``."""
    try:
        found = any(_same(value, a) for a in allowed)
    except (TypeError, ValueError):  # e.g. an array compared with a string
        found = False
    if not found:
        raise ValueError(f'{_prefix(owner)}{name}={value!r} is not supported; allowed values: '
                         f'{", ".join(map(repr, allowed))}')
    return value


def check_int(name: str, value: Any, minimum: int = 1, owner: str = '') -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``, else ``ValueError``:
    ``'{name} must be an int >= {minimum}, got {value!r}'``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f'{_prefix(owner)}{name} must be an int >= {minimum}, got {value!r}')
    return value


def check_bool(name: str, value: Any, owner: str = '') -> bool:
    """``value`` if it is ``True`` or ``False``, else ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f'{_prefix(owner)}{name} must be True or False, got {value!r}')
    return value


def check_ints(name: str, value: Any, length: Optional[int] = None,
               minimum: Optional[int] = None, entries: Sequence[str] = (),
               owner: str = '') -> Tuple[int, ...]:
    """``tuple(value)`` if ``value`` is a non-empty sequence of ints (not bools, not a string),
    each ``>= minimum`` when given, with ``length`` entries when given (``entries`` names them
    for the message, e.g. ``('detail', 'semantic')``); else ``ValueError``:
    ``'{name} must be 2 ints >= 1 (detail, semantic), got 128'``."""
    bound = '' if minimum is None else f' >= {minimum}'
    if length is None:
        allowed = f'a non-empty sequence of ints{bound}'
    else:
        allowed = f'{length} ints{bound}' + (f' ({", ".join(entries)})' if entries else '')
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0
            or (length is not None and len(value) != length)
            or not all(is_int(v) and (minimum is None or v >= minimum) for v in value)):
        raise ValueError(f'{_prefix(owner)}{name} must be {allowed}, got {value!r}')
    return tuple(value)


def check_positive_ints(name: str, value: Any, length: Optional[int] = None,
                        entries: Sequence[str] = (), owner: str = '') -> Tuple[int, ...]:
    """:func:`check_ints` with ``minimum=1`` (channel counts, depths, strides)."""
    return check_ints(name, value, length, 1, entries, owner)
