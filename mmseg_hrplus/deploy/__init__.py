"""Deployment rewrites of a built model: :func:`optimize_for_inference` (BN folding, Winograd
convs, the resize-sum head, channels-last, opt-in ``torch.compile`` through :mod:`.inductor`) and
the ONNX export of a segmentor's logits (:mod:`.onnx_export`), that export in OpenVINO
(:mod:`.openvino`, optional extra), and mmseg's inference around a runtime (:mod:`.runtime`)."""
from .optimize import optimize_for_inference

__all__ = ['optimize_for_inference']
