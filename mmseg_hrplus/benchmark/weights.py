"""The same weights in our model and its reference, with realistic BN statistics."""
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def calibrate_bn(model: nn.Module, shape: Sequence[int], device: str = 'cpu') -> None:
    """Set every BN's running statistics to those of one random batch ``(N, C, H, W)``
    (``N`` forced >= 2), through ``model(x, mode='tensor')`` in train mode; the model's
    train/eval mode and the BN momenta are restored. Without it a randomly initialised model's
    logits are tiny, and comparing two models' logits says little."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    was_training = model.training
    model.train()
    for m in norms:
        m.momentum = 1.0
    n, c, h, w = shape
    model(torch.randn(max(n, 2), c, h, w, device=device), mode='tensor')
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)


def _converters() -> List[Tuple[str, Callable[[dict], dict]]]:
    """(name, reference state dict -> ours) for models whose keys differ from mmseg's."""
    from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2
    return [('convert_mmseg_bisenetv2', convert_mmseg_bisenetv2)]


def share_weights(ours: nn.Module, ref: nn.Module, calib_shape: Sequence[int],
                  device: str = 'cpu') -> str:
    """Give both models the same weights; returns how (for the report).

    Ours is BN-calibrated (:func:`calibrate_bn` on ``calib_shape``) and its state dict loaded
    into the reference strictly; when the keys differ, the reference is calibrated and its
    weights go the other way through a converter, strictly again.

    Raises:
        RuntimeError: when neither a direct strict load nor a known converter matches (with
            each attempt's error).
    """
    calibrate_bn(ours, calib_shape, device)
    try:
        ref.load_state_dict(ours.state_dict(), strict=True)
        return 'ours -> reference (state dict, strict)'
    except RuntimeError as direct_error:
        errors = [f'direct: {str(direct_error)[:300]}']
    calibrate_bn(ref, calib_shape, device)
    for name, convert in _converters():
        try:
            ours.load_state_dict(convert(ref.state_dict()), strict=True)
            return f'reference -> ours ({name}, strict)'
        except (RuntimeError, ValueError) as error:
            errors.append(f'{name}: {str(error)[:300]}')
    raise RuntimeError('cannot give the two models the same weights: ' + ' | '.join(errors))
