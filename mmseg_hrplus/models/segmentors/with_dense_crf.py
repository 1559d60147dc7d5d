"""Dense-CRF post-processing for any mmseg segmentor, chosen in the config.

``type='mmseg_hrplus.WithDenseCRF'`` builds the segmentor named by ``segmentor_type`` from the
remaining arguments (the same flat config: ``backbone``, ``decode_head``, ...; the state dict
keys are unchanged, so every checkpoint of that segmentor loads) and, with ``crf.enabled``,
refines its test-time predictions with :class:`~mmseg_hrplus.models.postprocess.DenseCRF`
(DeepLabv2's third part). Training is untouched.

In ``predict`` (used by ``tools/test.py``'s test loop, ``tools/infer.py`` and mmseg's
``inference_model``), after the segmentor's own post-processing (padding removed, flip undone,
logits resized to the original image size):

* the image comes from the batch itself: the normalised input, de-normalised with the data
  preprocessor's mean/std, cropped and flipped like the logits, resized to the original size
  if the pipeline resized it, rounded to uint8, in the channel order the network was fed (BGR
  for the Caffe-preprocessed DeepLabv2 configs, like kazuto1011's demo; RGB after
  ``bgr_to_rgb``);
* ``probs = softmax(seg_logits)``, refined by the CRF on that image;
* ``pred_sem_seg`` becomes the argmax of the refined probabilities and ``seg_logits`` their
  log (so a softmax of it gives them back, e.g. in mmseg's test-time-augmentation merge).

Config::

    model = dict(type='mmseg_hrplus.WithDenseCRF', segmentor_type='EncoderDecoder',
                 crf=dict(enabled=True, iterations=10, gaussian_sxy=1, gaussian_weight=3,
                          bilateral_sxy=67, bilateral_srgb=3, bilateral_weight=4),
                 backbone=..., decode_head=..., ...)

or ``tools/test.py CONFIG CKPT --crf`` / ``tools/infer.py ... --crf`` on any segmentation
config (see :func:`enable_dense_crf`).
"""
from typing import Any, Dict, Mapping, Optional, Type

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import Tensor

from mmseg_hrplus.registry import MODELS

from ..postprocess.dense_crf import DenseCRF

WRAPPER_TYPE = 'mmseg_hrplus.WithDenseCRF'


class _DenseCRFPredict:
    """Mixed in front of a segmentor class: ``predict`` followed by the dense CRF."""

    dense_crf: DenseCRF

    def predict(self, inputs: Tensor, data_samples=None):
        results = super().predict(inputs, data_samples)
        for i, sample in enumerate(results):
            logits = sample.seg_logits.data
            if logits.shape[0] < 2:
                raise ValueError('WithDenseCRF: the dense CRF needs class logits (C >= 2), the '
                                 'model has a single-channel (sigmoid) output')
            meta = sample.metainfo if data_samples is not None else {}
            image = crf_image(self, inputs[i], meta, tuple(logits.shape[1:]))
            probs = F.softmax(logits.float(), dim=0).cpu().numpy()
            refined = torch.from_numpy(self.dense_crf(image, probs)).to(logits.device)
            sample.seg_logits = PixelData(data=refined.clamp_min(1e-12).log())
            sample.pred_sem_seg = PixelData(data=refined.argmax(dim=0, keepdim=True))
        return results


def crf_image(model: Any, image: Tensor, meta: Mapping, size: tuple):
    """The uint8 ``(H, W, 3)`` image under one prediction of ``size``, from the model input.

    Undoes the data preprocessor's normalisation, then treats the image as mmseg's
    ``postprocess_result`` treats the logits (padding crop, flip, resize to ``size``).
    """
    if image.shape[0] != 3:
        raise ValueError(f'WithDenseCRF: the colour kernel needs 3-channel images, the input '
                         f'has {image.shape[0]}')
    image = image.float()
    preprocessor = getattr(model, 'data_preprocessor', None)
    if getattr(preprocessor, '_enable_normalize', False):
        image = image * preprocessor.std.to(image) + preprocessor.mean.to(image)
    _, h, w = image.shape
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    image = image[:, top:h - bottom, left:w - right]
    if meta.get('flip'):
        image = image.flip(dims=(2, ) if meta.get('flip_direction') == 'horizontal' else (1, ))
    if tuple(image.shape[1:]) != tuple(size):
        image = F.interpolate(image[None], size=size, mode='bilinear', align_corners=False)[0]
    image = image.clamp(0, 255).round().to(torch.uint8)
    return image.permute(1, 2, 0).contiguous().cpu().numpy()


_CLASSES: Dict[type, type] = {}


def _with_crf_class(base: Type) -> Type:
    """``base`` with :class:`_DenseCRFPredict` in front (one class per base, kept): the model is
    built as this class from the start, never converted."""
    if base not in _CLASSES:
        _CLASSES[base] = type(f'{base.__name__}WithDenseCRF', (_DenseCRFPredict, base),
                              {'__module__': __name__, '__doc__': base.__doc__})
    return _CLASSES[base]


@MODELS.register_module(name='WithDenseCRF')
def with_dense_crf(segmentor_type: str, crf: Optional[dict] = None, **segmentor_kwargs):
    """Build ``segmentor_type`` and, if ``crf.enabled``, refine its predictions with a dense CRF.

    Args:
        segmentor_type: the segmentor's registry type, e.g. ``'EncoderDecoder'``,
            ``'mmseg_hrplus.MSCEncoderDecoder'``.
        crf: ``enabled`` (default True) and the :class:`DenseCRF` arguments. With
            ``enabled=False`` the plain segmentor is returned.
        **segmentor_kwargs: the segmentor's own arguments.

    Returns:
        The segmentor (same modules and state-dict keys), built as a subclass of its class whose
        ``predict`` applies the CRF, with the refiner as ``model.dense_crf``. (A module holding
        the segmentor would prefix every state-dict key, and its checkpoints would no longer
        load.)
    """
    from mmseg.registry import MODELS as SEG_MODELS

    crf = dict(crf or {})
    enabled = crf.pop('enabled', True)
    if _short(segmentor_type) == 'WithDenseCRF':
        raise ValueError('WithDenseCRF: segmentor_type cannot be WithDenseCRF itself')
    refiner = DenseCRF(**crf) if enabled else None  # fails early on bad values or no package
    if refiner is None:
        return SEG_MODELS.build(dict(type=segmentor_type, **segmentor_kwargs))
    base = SEG_MODELS.get(segmentor_type) if isinstance(segmentor_type, str) else segmentor_type
    if base is None:
        raise KeyError(f'WithDenseCRF: segmentor_type={segmentor_type!r} is not registered')
    model = SEG_MODELS.build(dict(type=_with_crf_class(base), **segmentor_kwargs))
    model.dense_crf = refiner
    return model


def _short(type_name: Any) -> str:
    return type_name.split('.')[-1] if isinstance(type_name, str) else getattr(
        type_name, '__name__', str(type_name))


def enable_dense_crf(model_cfg: Mapping) -> dict:
    """A segmentation model config with the dense CRF switched on (for ``--crf`` flags).

    A :data:`WRAPPER_TYPE` config keeps its parameters and gets ``crf.enabled=True``; any other
    segmentor config is wrapped with the default (DeepLabv2) parameters.
    """
    cfg = dict(model_cfg)
    if _short(cfg.get('type')) == 'WithDenseCRF':
        cfg['crf'] = dict(cfg.get('crf') or {}, enabled=True)
        return cfg
    segmentor_type = cfg.pop('type')
    return dict(type=WRAPPER_TYPE, segmentor_type=segmentor_type, crf=dict(enabled=True), **cfg)
