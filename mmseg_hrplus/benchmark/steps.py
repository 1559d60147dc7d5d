"""The calls the benchmark times: one inference (logits) and one training step."""
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor


def make_batch(model: nn.Module, shape: Sequence[int], device: str = 'cpu',
               seed: int = 0) -> Tuple[Tensor, list]:
    """Random normalised images ``(N, C, H, W)`` and ``N`` SegDataSamples with random labels
    ``(1, H, W)`` in ``[0, num_classes)`` of the model's decode head (19 without one)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    inputs = torch.randn(n, c, h, w, generator=gen).to(device)
    head = getattr(model, 'decode_head', None)
    num_classes = getattr(head[-1] if isinstance(head, nn.ModuleList) else head,
                          'num_classes', 19)
    samples: List = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w),
                                             ori_shape=(h, w)))
        label = torch.randint(0, num_classes, (1, h, w), generator=gen)
        sample.gt_sem_seg = PixelData(data=label.to(device))
        samples.append(sample)
    return inputs, samples


def train_step_fn(model: nn.Module, inputs: Tensor, samples: list,
                  set_to_none: bool = True) -> Callable[[], float]:
    """One training step as a function: ``model.loss`` -> summed loss -> backward -> SGD
    (lr 0.01, momentum 0.9, weight decay 5e-4, as mmseg's HRNet/BiSeNetV2 recipes). Puts
    ``model`` in train mode; the function returns the loss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=5e-4)

    def step() -> float:
        optim.zero_grad(set_to_none=set_to_none)
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        loss.backward()
        optim.step()
        return float(loss.detach())

    return step


def logits_of(out) -> Tensor:
    """The logits of a ``mode='tensor'`` output (a tensor, or the first of a tuple/list)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def infer_fn(model: nn.Module, inputs: Tensor) -> Callable[[], Tensor]:
    """One inference as a function: ``model(inputs, mode='tensor')`` in ``torch.no_grad``
    (backbone + decode head logits, ``(N, num_classes, H/4, W/4)`` for HRNetV2)."""
    def run() -> Tensor:
        with torch.no_grad():
            return logits_of(model(inputs, mode='tensor'))
    return run
