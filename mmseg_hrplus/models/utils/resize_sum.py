"""The accumulation behind the per-stream form of a 1x1 conv over resized, concatenated
streams (``ResizeSumFCNHead``, also the head ``optimize_for_inference`` factorises into)."""
from typing import Iterable

import torch
from mmseg.models.utils import resize
from torch import Tensor


def add_resized(total: Tensor, terms: Iterable[Tensor], align_corners: bool) -> Tensor:
    """``total + sum_j resize(terms[j], size of total)`` (bilinear), accumulated in place.

    ``total`` must be a fresh tensor of the caller's (a conv output: its backward does not
    read it). ``terms`` is consumed one at a time, so only one resized term is alive at once.
    A term already at ``total``'s size is added as it is, except while tracing (ONNX export):
    the trace would freeze that size test at the example input, so it always resizes (a
    same-size bilinear resize is an exact copy).

    Shapes: ``total (N, C, H, W)``, each term ``(N, C, H_j, W_j)``; returns ``total``.
    """
    size = total.shape[2:]
    for term in terms:
        if torch.jit.is_tracing() or term.shape[2:] != size:
            term = resize(term, size=size, mode='bilinear', align_corners=align_corners,
                          warning=False)
        total += term
    return total
