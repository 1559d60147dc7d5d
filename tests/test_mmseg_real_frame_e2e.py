"""End to end through MMSegmentation on the real Cityscapes frame (tests/data/cityscapes_sample):
our W18-small config trained from scratch with tools/train.py, evaluated with tools/test.py, then
reloaded from its checkpoint with mmseg's own ``init_model`` and run on the image."""
import glob
import json
from pathlib import Path

import mmcv
import numpy as np
from mmseg.apis import inference_model, init_model

from tests.helpers.detector_e2e import run_script

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO_ROOT / 'configs' / 'hrnet' / 'hrnet_w18_small_cityscapes.py'
MAX_ITERS = 30

# The W18-small Cityscapes config as it is, but: mmseg's CityscapesDataset on the one shared
# frame (its val split serves as train and test), the frame's own size (128x256, so no resize
# or crop), plain BN (one process), no ImageNet file, and AdamW so that a few dozen steps from
# scratch show learning (the 80k recipe's SGD at lr 0.01 is built for 80k steps).
REAL_FRAME_CONFIG = """
_base_ = {base!r}
data_root = {data_root!r}
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 256)),
    backbone=dict(norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_pipeline = pipeline  # what mmseg's init_model/inference_model use
dataset = dict(type='CityscapesDataset', data_root=data_root, pipeline=pipeline,
               data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'))
train_dataloader = dict(_delete_=True, batch_size=1, num_workers=0, persistent_workers=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True), dataset=dataset)
val_dataloader = dict(_delete_=True, batch_size=1, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset)
test_dataloader = val_dataloader
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end={max_iters},
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval={max_iters} + 1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={max_iters}),
                     visualization=dict(draw=False))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0)
"""


def _run(args, timeout):
    """Wall seconds of a repository script run (one OpenMP thread; see detector_e2e)."""
    return run_script(args, timeout=timeout)[1]


def test_w18_small_trains_evaluates_and_reloads_on_real_frame(cityscapes_sample, tmp_path):
    config = tmp_path / 'hrnet_w18_small_cityscapes-frame.py'
    config.write_text(REAL_FRAME_CONFIG.format(base=str(BASE_CONFIG), max_iters=MAX_ITERS,
                                               data_root=str(cityscapes_sample)))
    work_dir = tmp_path / 'work'
    train_time = _run([REPO_ROOT / 'tools' / 'train.py', config, '--work-dir', work_dir], 600)

    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1, scalars
    logs = [json.loads(line) for line in Path(scalars[0]).read_text().splitlines()]
    losses = [r['loss'] for r in logs if 'loss' in r]
    assert len(losses) == MAX_ITERS
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f'train: {MAX_ITERS} iters in {train_time:.1f} s; loss {first:.3f} -> {last:.3f}')
    assert last < 0.5 * first

    checkpoint = work_dir / f'iter_{MAX_ITERS}.pth'
    test_time = _run([REPO_ROOT / 'tools' / 'test.py', config, checkpoint,
                      '--work-dir', tmp_path / 'test'], 300)
    results = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert len(results) == 1, results
    metrics = json.loads(Path(results[0]).read_text())
    print(f'test: {test_time:.1f} s; aAcc {metrics["aAcc"]:.2f}, mIoU {metrics["mIoU"]:.2f}')
    assert metrics['aAcc'] > 50.0  # the frame it was fitted to; chance is about 1/19

    # mmseg's own API reloads our checkpoint (registry names, safe loading) and predicts.
    model = init_model(str(config), str(checkpoint), device='cpu')
    image = next(cityscapes_sample.glob('leftImg8bit/val/*/*_leftImg8bit.png'))
    pred = inference_model(model, str(image)).pred_sem_seg.data
    label = next(cityscapes_sample.glob('gtFine/val/*/*_labelTrainIds.png'))
    gt = mmcv.imread(str(label), flag='unchanged')
    assert tuple(pred.shape) == (1, *gt.shape) == (1, 128, 256)
    valid = gt != 255
    pixel_acc = (pred[0].numpy()[valid] == gt[valid]).mean() * 100
    assert abs(pixel_acc - metrics['aAcc']) < 0.5  # the same network as tools/test.py ran
