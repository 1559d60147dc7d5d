# BiSeNetV2 (the real-time model, the shipped configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py)
# trained from scratch on the synthetic street scenes in data/demo (Cityscapes layout, 128x256
# images, 8 of the 19 Cityscapes classes; `python tools/demo.py` writes them), so that deployment
# accuracy (tools/analysis_tools/deploy_accuracy.py) is measured on a trained model. Sized for
# 2 CPU cores: 200 iterations of batch 4 at 128x256, about 11 minutes on one idle core.
#
#   python tools/train.py configs/quickstart/bisenetv2_synthetic.py \
#       --work-dir work_dirs/bisenetv2_synthetic
#
# Kept from the shipped config: the model (backbone, BGA head, four booster heads), no weight
# decay on BN parameters and biases, linear warm-up then poly decay. Changed for the small data
# and the short run: the pipelines (the images are used at their size, flip only), the crop
# size, batch 4, 200 iterations with a 25-iteration warm-up, and AdamW at lr 2e-3 (as the
# quickstart HRNet) instead of SGD at 5e-2, which needs far more iterations from scratch.
_base_ = ['../bisenetv2/bisenetv2_cityscapes-1024x1024.py']

data_root = 'data/demo'
crop_size = (128, 256)
model = dict(data_preprocessor=dict(size=crop_size))

# the synthetic images are used at their size (no resize): load, [flip,] pack
load_steps = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
train_pipeline = load_steps + [dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
test_pipeline = load_steps + [dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=1e-4))

max_iters = 200
warmup_iters = 25
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=warmup_iters, by_epoch=False),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=warmup_iters, end=max_iters,
         by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters))
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False)
