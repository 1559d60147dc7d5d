"""DeepLabv2's multi-scale inference ("MSC"): logits of rescaled copies of the image, max-fused.

DeepLabv2 (Chen et al., TPAMI 2017, Sec. 3.3 / 4.1, "MSC") runs the network on the image at
scales 1, 0.75 and 0.5 and takes the per-pixel maximum of the class logits. This segmentor does
that at test time, with exactly the arithmetic of kazuto1011/deeplab-pytorch (the PyTorch port
whose weights ``configs/deeplabv2/*kazuto-weights.py`` load), because the variants differ by
several percent of the logits:

* a scaled copy is made with ``F.interpolate(img, scale_factor=s, mode='bilinear',
  align_corners=False)``: the output side is ``floor(side * s)`` and the sampling grid uses
  ``1 / s`` itself (not the ratio of the rounded sides);
* every scale's logits (at 1/8 of its input) are resized bilinearly (``align_corners=False``)
  to the grid of the scale-1 logits, and the maximum is taken THERE, before the one final
  resize to the image size that mmseg does for every segmentor.

Training is unchanged (single scale): the original's multi-scale training loss is not part of
this class.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor

from mmseg_hrplus.registry import MODELS

#: DeepLabv2's test scales (the reference scale first).
DEEPLABV2_SCALES = (1.0, 0.75, 0.5)


@MODELS.register_module()
class MSCEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` with DeepLabv2's max-fused multi-scale test.

    Args:
        msc_scales: input scales whose logits are max-fused at test time; must contain 1.0,
            whose logit grid the others are resized to. ``(1.0, )`` is the plain
            ``EncoderDecoder``.
        **kwargs: the rest of ``EncoderDecoder`` (``backbone``, ``decode_head``, ``test_cfg``,
            ...). ``test_cfg.mode='slide'`` fuses the scales inside each crop.

    Raises:
        ValueError: for empty scales, a non-positive scale, or scales without 1.0.

    Example:
        >>> model = dict(type='mmseg_hrplus.MSCEncoderDecoder', msc_scales=(1.0, 0.75, 0.5),
        ...              backbone=..., decode_head=..., test_cfg=dict(mode='whole'))
    """

    def __init__(self, msc_scales: Sequence[float] = DEEPLABV2_SCALES, **kwargs) -> None:
        scales = tuple(float(s) for s in msc_scales)
        if not scales or any(s <= 0 for s in scales) or 1.0 not in scales:
            raise ValueError(f'MSCEncoderDecoder: msc_scales={tuple(msc_scales)} must be '
                             f'positive and contain 1.0 (the grid the logits are fused on), '
                             f'e.g. {DEEPLABV2_SCALES}')
        super().__init__(**kwargs)
        self.msc_scales = scales

    def fused_logits(self, inputs: Tensor) -> Tensor:
        """Max over the scales of the decode head's logits, on the scale-1 logit grid.

        Args:
            inputs: normalised images ``(N, C, H, W)``.

        Returns:
            ``(N, num_classes, h, w)``, ``(h, w)`` being the size of the scale-1 logits
            (1/8 of the input for DeepLabv2).
        """
        reference = self.decode_head.forward(self.extract_feat(inputs))
        fused = reference
        for scale in self.msc_scales:
            if scale == 1.0:
                continue
            scaled = F.interpolate(inputs, scale_factor=scale, mode='bilinear',
                                   align_corners=False)
            logits = self.decode_head.forward(self.extract_feat(scaled))
            logits = F.interpolate(logits, size=reference.shape[2:], mode='bilinear',
                                   align_corners=False)
            fused = torch.maximum(fused, logits)
        return fused

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Logits at the input size: multi-scale max-fused in eval mode, plain in training."""
        if self.training or self.msc_scales == (1.0, ):
            return super().encode_decode(inputs, batch_img_metas)
        return self.decode_head.predict_by_feat(self.fused_logits(inputs), batch_img_metas)
