"""The accuracy of deployment paths (:mod:`.deploy_paths`) over a labelled split, all against
the first one (f32 PyTorch).

Each batch of the dataloader goes once through the segmentor's data preprocessor; every path
then computes the decode head's logits from the same inputs, and mmseg's own
``decode_head.predict_by_feat`` and ``postprocess_result`` turn them into label maps at the
images' original sizes, as ``EncoderDecoder.test_step`` does in ``tools/test.py`` (test_cfg
mode 'whole'). Per path:

* ``metrics``: the config's evaluator (mmseg's ``IoUMetric``) over the split: ``mIoU``
  (percent, rounded to 2 decimals by mmseg), ``aAcc``, ``mAcc``;
* ``agreement``: the fraction of valid pixels (ground truth not ``ignore_index``) whose label
  equals the reference path's;
* ``max_rel_logit_diff``: over the split, the largest ``max |logits - ref| / max |ref|`` of a
  batch (the decode head's logits, before the resize).
"""
from typing import Dict, Iterable, List, Mapping

import torch
import torch.nn as nn
from mmengine.evaluator import Evaluator

from .deploy_paths import DeployPath


class _Agreement:
    """Running count of valid pixels and of those labelled as the reference labels them."""

    def __init__(self, ignore_index: int):
        self.ignore_index = ignore_index
        self.same = 0
        self.valid = 0

    def add(self, preds: List[torch.Tensor], refs: List[torch.Tensor],
            gts: List[torch.Tensor]) -> None:
        for pred, ref, gt in zip(preds, refs, gts):
            valid = gt != self.ignore_index
            self.same += int(((pred == ref) & valid).sum())
            self.valid += int(valid.sum())

    @property
    def fraction(self) -> float:
        return self.same / self.valid if self.valid else float('nan')


def _labels(samples) -> List[torch.Tensor]:
    return [s.pred_sem_seg.data.squeeze(0).clone() for s in samples]


def evaluate_paths(segmentor: nn.Module, paths: Mapping[str, DeployPath],
                   dataloader: Iterable[dict], evaluator_cfg, dataset_meta: dict,
                   ignore_index: int = 255) -> Dict[str, dict]:
    """Run every path over ``dataloader`` and score it (see the module notes).

    Args:
        segmentor: the PyTorch ``EncoderDecoder`` the paths were built from (its data
            preprocessor, decode head and ``postprocess_result`` are used for all).
        paths: name -> :class:`DeployPath`; the first is the reference.
        dataloader: the test dataloader (batches as ``tools/test.py`` sees them).
        evaluator_cfg: the config's ``test_evaluator`` (one is built per path).
        dataset_meta: the dataset's ``metainfo`` (class names for the metric).
        ignore_index: the label of unlabelled pixels, left out of the agreement.

    Returns:
        name -> ``dict(metrics=..., mIoU=..., agreement=..., max_rel_logit_diff=...,
        images=...)``.
    """
    names = list(paths)
    reference = names[0]
    evaluators, agreements, worst = {}, {}, dict.fromkeys(names, 0.0)
    for name in names:
        evaluators[name] = Evaluator(evaluator_cfg)
        evaluators[name].dataset_meta = dataset_meta
        agreements[name] = _Agreement(ignore_index)
    images = 0
    decode_head = segmentor.decode_head
    with torch.no_grad():
        for batch in dataloader:
            data = segmentor.data_preprocessor(batch, False)
            inputs, samples = data['inputs'].float(), data['data_samples']
            metas = [sample.metainfo for sample in samples]
            gts = [s.gt_sem_seg.data.squeeze(0) for s in samples]
            ref_logits = paths[reference].logits(inputs)
            scale = float(ref_logits.abs().max())
            ref_labels = None
            for name in names:
                logits = ref_logits if name == reference else paths[name].logits(inputs)
                diff = float((logits - ref_logits).abs().max()) / scale if scale else 0.0
                worst[name] = max(worst[name], diff)
                # postprocess_result overwrites pred_sem_seg in ``samples`` for each path; the
                # evaluator reads it at once
                scored = segmentor.postprocess_result(
                    decode_head.predict_by_feat(logits, metas), samples)
                labels = _labels(scored)
                ref_labels = labels if name == reference else ref_labels
                agreements[name].add(labels, ref_labels, gts)
                evaluators[name].process(data_samples=scored, data_batch=batch)
            images += len(samples)
    results = {}
    for name in names:
        metrics = evaluators[name].evaluate(images)
        results[name] = dict(metrics=metrics, mIoU=float(metrics['mIoU']),
                             agreement=agreements[name].fraction,
                             max_rel_logit_diff=worst[name], images=images)
    return results
