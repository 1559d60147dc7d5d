"""Training-mode helpers shared by the backbones: frozen stages and ``norm_eval``."""
from typing import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def freeze(modules: Iterable[nn.Module]) -> None:
    """Put ``modules`` in eval mode and stop gradients to their parameters (frozen stages)."""
    for module in modules:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False


def keep_norm_eval(module: nn.Module) -> None:
    """Put every BatchNorm (incl. SyncBN) inside ``module`` in eval mode: running statistics are
    used and not updated, as ``norm_eval=True`` asks during training."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
