"""What the detector end-to-end tests share: the real Cityscapes frame as COCO json, a narrow
HRNetV2p R-CNN config overlaid on one of ours, and our tools/train.py and tools/test.py run as
subprocesses (one OpenMP thread each)."""
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]

# A narrow HRNetV2p R-CNN on one of our W18 configs: 1 block per branch, widths 8..64, 32-channel
# pyramid, few samples. {mask_heads} is empty for Faster R-CNN.
NARROW_CONFIG = """
_base_ = {base!r}
data_root = {data_root!r}
ann_file = {ann_file!r}
# The shared frame is 256x128: objects at ~2x. Sides deliberately not multiples of 32 and no
# padding: the bilinear HRNet and the neck work on any size.
scale = (500, 250)

model = dict(
    data_preprocessor=dict(pad_size_divisor=1),
    backbone=dict(
        _delete_=True,
        type='mmseg_hrplus.HRNet',
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(1, ),
                        num_channels=(16, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(1, 1),
                        num_channels=(8, 16)),
            stage3=dict(num_modules=1, num_branches=3, block='BASIC', num_blocks=(1, 1, 1),
                        num_channels=(8, 16, 32)),
            stage4=dict(num_modules=1, num_branches=4, block='BASIC', num_blocks=(1, 1, 1, 1),
                        num_channels=(8, 16, 32, 64))),
        upsample_mode='bilinear',
        init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=8),{mask_heads}),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    # COCO AP ranks detections by score, so keeping low scores (<= 100 boxes) only adds recall.
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(score_thr=0.0)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={with_mask}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset = dict(type='CityscapesDataset', data_root=data_root, ann_file=ann_file,
               data_prefix=dict(img='leftImg8bit/val/'))
train_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, filter_cfg=dict(filter_empty_gt=True), pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=ann_file, metric={metric!r})
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={max_iters},
                 val_interval={max_iters} + 1)
# From scratch in a few dozen steps: AdamW gets there, the 1x recipe's SGD (lr 0.02) still had
# mAP 0 on this frame after 40 iterations.
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.002, weight_decay=0.0001),
    clip_grad=dict(max_norm=10.0))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval={max_iters}),
    visualization=dict(draw=False))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0)
"""

#: The Mask R-CNN heads at the narrow width (the mask head's 4 convs 32 wide).
NARROW_MASK_HEADS = """
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32, num_classes=8)"""


def write_narrow_config(path: Path, base: Path, data_root: Path, ann_file: Path,
                        max_iters: int, masks: bool = False) -> Path:
    """Write the narrow config on top of ``base`` (a Faster or, with ``masks``, a Mask R-CNN
    config of ours): boxes and ``bbox`` metric, plus instance masks and ``segm`` with ``masks``."""
    path.write_text(NARROW_CONFIG.format(
        base=str(base), data_root=str(data_root), ann_file=str(ann_file), max_iters=max_iters,
        mask_heads=NARROW_MASK_HEADS if masks else '', with_mask=masks,
        metric=['bbox', 'segm'] if masks else 'bbox'))
    return path


def run_script(args, cwd=REPO_ROOT, timeout=600, env: Optional[Dict[str, str]] = None
               ) -> Tuple[subprocess.CompletedProcess, float]:
    """Run a repository script with this Python (``env``: extra environment variables);
    returns the process and its wall time (s)."""
    # One OpenMP thread: on a busy 2-core machine two made training ~4x slower (measured).
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, f'{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc, elapsed


def json_lines(path) -> List[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def frame_to_coco(cityscapes_sample: Path, out_dir: Path) -> Path:
    """The real frame's val annotations as COCO json (boxes and RLE masks); its path."""
    run_script([REPO_ROOT / 'tools' / 'dataset_converters' / 'cityscapes_instances_to_coco.py',
                cityscapes_sample, '--splits', 'val', '-o', out_dir], timeout=120)
    return out_dir / 'instancesonly_filtered_gtFine_val.json'


def train(config: Path, work_dir: Path, max_iters: int) -> Tuple[List[dict], float]:
    """tools/train.py on ``config``: the per-iteration training logs and the wall time."""
    _, elapsed = run_script([REPO_ROOT / 'tools' / 'train.py', config, '--work-dir', work_dir])
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1, scalars
    logs = [r for r in json_lines(scalars[0]) if 'loss' in r]
    assert [r['iter'] for r in logs] == list(range(1, max_iters + 1))
    return logs, elapsed


def mean_loss(logs: List[dict], key: str, first: bool, n: int = 5) -> float:
    """Mean of ``key`` over the first (or last) ``n`` logged iterations."""
    rows = logs[:n] if first else logs[-n:]
    return sum(r[key] for r in rows) / len(rows)


def evaluate(config: Path, checkpoint: Path, test_dir: Path, out_pkl: Path
             ) -> Tuple[dict, float]:
    """tools/test.py with ``--out``: the metrics json it wrote and the wall time."""
    _, elapsed = run_script([REPO_ROOT / 'tools' / 'test.py', config, checkpoint,
                             '--work-dir', test_dir, '--out', out_pkl], timeout=300)
    results = glob.glob(str(test_dir / '*' / '*.json'))
    assert len(results) == 1, results
    return json.loads(Path(results[0]).read_text()), elapsed
