"""Which memory layout a tensor is in."""
import torch
from torch import Tensor


def is_channels_last(t: Tensor) -> bool:
    """True for a dense tensor in ``torch.channels_last`` (NHWC) order that is not also
    contiguous in NCHW order. Tensors whose channels_last and NCHW strides coincide (1x1
    spatial maps, e.g. a 1x1 conv's weight, or a single channel) count as NCHW, since their
    layout carries no choice."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
