"""Parameters and FLOPs of a config's inference graph, counted with mmengine.

The model is built from the config (``default_scope`` 'mmseg' or 'mmdet'), auxiliary heads are
removed (they run in training only), SyncBN becomes BN, and mmengine's
``get_model_complexity_info`` (a jit-trace based counter; one multiply-add counts as one FLOP,
as in mmseg's and mmdet's get_flops tools; it also counts BN in eval mode, 2 per element, and
bilinear resizes, 4 per output element; element-wise sums, activations and pooling are not
counted) runs one forward in ``mode='tensor'`` on a random ``1 x 3 x H x W`` input:

* segmentors: backbone + decode head; the logits are counted at the head's resolution, the final
  bilinear resize to the input is not (mmseg's tool does the same);
* detectors: backbone + neck + RPN + RoI head on ``H x W`` (mmdet's ``_forward``).

Used by ``tools/analysis_tools/get_flops.py`` and the fusion ablation project.
"""
import logging
from typing import Dict, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmseg_hrplus.engine.runner import build_config_model


def build_inference_model(cfg: Config) -> torch.nn.Module:
    """The config's model in eval mode, without auxiliary heads, SyncBN reverted to BN, no
    pretrained weights loaded (counts do not depend on them)."""
    return build_config_model(cfg, drop_auxiliary_heads=True).eval()


class _TensorForward(torch.nn.Module):
    """``model(img, data_samples, mode='tensor')`` with the data samples held fixed: the jit
    tracer behind mmengine's counter accepts tensors only as inputs."""

    def __init__(self, model: torch.nn.Module, data_samples: Optional[list]):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, img: torch.Tensor):
        return self.model(img, self.data_samples, mode='tensor')


def _counted_module(model: torch.nn.Module, scope: str,
                    shape: Tuple[int, int]) -> torch.nn.Module:
    """``model`` as a module of one image tensor (mmdet's forward also needs image metas)."""
    data_samples = None
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                    scale_factor=(1.0, 1.0))
        data_samples = [DetDataSample(metainfo=meta)]
    return _TensorForward(model, data_samples)


def count(config: str, shape: Tuple[int, int],
          cfg_options: Optional[dict] = None) -> Dict[str, float]:
    """Count the inference graph of ``config`` on a ``1 x 3 x H x W`` input.

    Args:
        config: config file path.
        shape: (H, W).
        cfg_options: overrides merged into the config.

    Returns:
        ``dict(params=..., flops=...)``: parameters of the inference model (auxiliary heads
        removed) and FLOPs (multiply-adds) of one forward, as counted by mmengine.
    """
    from mmengine.analysis import get_model_complexity_info

    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f'shape={tuple(shape)} must be two positive ints (H, W)')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_inference_model(cfg)
    counted = _counted_module(model, cfg.get('default_scope', 'mmseg'), tuple(shape))
    # mmengine warns about every op it does not count (additions, activations, ...): quiet
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            info = get_model_complexity_info(counted, inputs=(torch.rand(1, 3, *shape), ),
                                             show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return dict(params=float(info['params']), flops=float(info['flops']))
