"""Inference: segmenting images (:mod:`.inference`) and videos (:mod:`.video`), label overlays
(:mod:`.overlay`) and progress reporting (:mod:`.progress`). Deployment rewrites of a model are
in :mod:`mmseg_hrplus.deploy`."""
