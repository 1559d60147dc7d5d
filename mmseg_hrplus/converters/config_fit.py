"""Whether converted weights fit a config's model: every key present, none extra, every shape
equal, then a strict ``load_state_dict`` (``convert.py ... --config CONFIG``).

Weights with no ``backbone.`` key (an ImageNet backbone, meant for the backbone's ``init_cfg``)
are checked against the model's backbone; all others against the whole model.
"""
from typing import Mapping

from torch import Tensor, nn

from .registry import ConversionError, first_keys, wrong_shapes

#: How many keys of each kind an error names.
KEYS_NAMED = 5


def check_fits_model(state_dict: Mapping[str, Tensor], model: nn.Module, config: str) -> str:
    """Load ``state_dict`` strictly into ``model`` (or its backbone, see the module docstring).

    Args:
        state_dict: converted weights, our keys.
        model: the config's model, built without loading any checkpoint.
        config: the config's path, for the messages.

    Returns:
        One line saying what was loaded into what.

    Raises:
        ConversionError: keys missing from ``state_dict``, keys the model does not have, or
            shapes that differ; names the config and the first keys (with both shapes).
    """
    target, part = model, 'model'
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module) and not any(k.startswith('backbone.') for k in state_dict):
        target, part = backbone, 'backbone'
    expected = target.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    shapes = wrong_shapes(state_dict, {key: value.shape for key, value in expected.items()})
    what = f'{config}: the converted weights do not fit its {part} ({type(target).__name__})'
    problems = [f'{len(found)} {kind}: {first_keys(found, KEYS_NAMED)}' for kind, found in (
        ('missing from the weights', missing), ('not in the model', unexpected),
        ('of another shape', shapes)) if found]
    if problems:
        raise ConversionError(f'{what}: ' + '; '.join(problems))
    try:
        target.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as err:  # e.g. a tensor that cannot be copied in
        raise ConversionError(f'{what}: {str(err).splitlines()[0]}') from None
    return (f'{config}: all {len(state_dict)} converted tensors load strictly into its {part} '
            f'({type(target).__name__})')
