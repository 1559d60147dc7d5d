"""Comparing predicted labels of two code paths that round differently (a batch of frames vs
one frame at a time): the argmax may flip only where the two best logits are within rounding of
a tie, so labels are compared everywhere else."""
import numpy as np
import torch

from .float_bounds import DEEP


def assert_labels_equal_where_decided(labels, logits, rel: float = DEEP,
                                      max_undecided: float = 0.01) -> int:
    """Assert ``labels`` equal ``logits.argmax(0)`` at every pixel whose two best logits are more
    than ``rel * max |logits|`` apart, and that at most ``max_undecided`` of the pixels are not.

    Args:
        labels: (H, W) labels of the other path (array or tensor).
        logits: (C, H, W) logits of the reference path.
        rel: the relative rounding bound of the two paths (tests/helpers/float_bounds.py).
        max_undecided: largest fraction of pixels allowed within rounding of a tie, so that the
            comparison covers nearly every pixel (measured at most 0.13%: 11 of 8192 for the
            tiny random HRNet of tests/tools/conftest.py, whose logits are close together).

    Returns:
        The number of pixels within rounding of a tie (printed with the number that differ).
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    assert labels.shape == logits.shape[1:], (labels.shape, logits.shape)
    top2 = logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1]) > rel * float(logits.abs().max())
    expected = logits.argmax(0)
    undecided = int((~decided).sum())
    print(f'{undecided} of {decided.numel()} pixels within rounding of a tie; '
          f'{int((labels != expected).sum())} labels differ')
    assert undecided <= max_undecided * decided.numel(), f'{undecided} undecided pixels'
    assert torch.equal(labels[decided], expected[decided])
    return undecided
