"""DeepLabv2 configs: the paper's recipe, the data bases, and the R101 Cityscapes model's size."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS as MMSEG_MODELS

from mmseg_hrplus.models.backbones.dilated_resnet import STAGE_BLOCKS, DilatedResNet
from mmseg_hrplus.models.decode_heads.aspp_head import ASPPHead

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'deeplabv2'
CITYSCAPES = CONFIGS / 'deeplabv2_r101-d8_cityscapes-512x1024.py'
VOC = CONFIGS / 'deeplabv2_r101-d8_voc12aug-512x512.py'

# Stated in the README: DeepLabv2 ResNet-101 + ASPP-L for 19 classes.
R101_BACKBONE_PARAMS = 42_500_160
ASPP_L_19_PARAMS = 1_400_908
DEEPLABV2_R101_CITYSCAPES_PARAMS = 43_901_068


def resnet_param_count(blocks, in_channels=3, stem_channels=64, base_channels=64):
    """Bottleneck ResNet with a 7x7 stem, counted layer by layer (BN: weight + bias)."""
    total = in_channels * stem_channels * 7 * 7 + 2 * stem_channels
    inplanes = stem_channels
    for stage, num_blocks in enumerate(blocks):
        p = base_channels * 2**stage
        for b in range(num_blocks):
            total += inplanes * p + 2 * p + 9 * p * p + 2 * p + p * 4 * p + 2 * 4 * p
            if b == 0:  # projection shortcut
                total += inplanes * 4 * p + 2 * 4 * p
            inplanes = 4 * p
    return total


def aspp_l_param_count(in_channels, num_classes, num_branches=4):
    return num_branches * (3 * 3 * in_channels * num_classes + num_classes)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('path, num_classes', [(CITYSCAPES, 19), (VOC, 21)])
def test_recipe(path, num_classes):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    assert backbone.type == 'mmseg_hrplus.DilatedResNet'
    assert (backbone.depth, backbone.output_stride, backbone.stem) == (101, 8, 'v1')
    assert backbone.contract_dilation is False
    assert backbone.norm_eval is True and backbone.norm_cfg.requires_grad is False
    assert backbone.init_cfg.type == 'Pretrained'
    # ImageNet by name, as mmseg's configs (tests/configs/test_init_weights_by_name.py)
    assert backbone.init_cfg.checkpoint == 'torchvision://resnet101'
    assert head.type == 'mmseg_hrplus.DeepLabV2ASPPHead' and head.num_classes == num_classes
    assert tuple(head.dilations) == (6, 12, 18, 24)
    assert 'auxiliary_head' not in cfg.model

    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 2.5e-4, 0.9, 5e-4)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'decode_head': dict(lr_mult=10.0)}
    (poly, ) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min) == ('PolyLR', 0.9, 0.0)
    assert poly.end == cfg.train_cfg.max_iters
    assert cfg.auto_scale_lr.base_batch_size == 10
    assert 10 % cfg.train_dataloader.batch_size == 0
    assert cfg.model.data_preprocessor.size == cfg.crop_size


def test_voc_uses_sbd_augmented_train_set():
    cfg = Config.fromfile(str(VOC))
    assert cfg.train_cfg.max_iters == 20000
    train = cfg.train_dataloader.dataset
    assert train.type == 'ConcatDataset'
    assert [d.ann_file for d in train.datasets] == [
        'ImageSets/Segmentation/train.txt', 'ImageSets/Segmentation/aug.txt']
    assert train.datasets[1].data_prefix.seg_map_path == 'SegmentationClassAug'


def test_cityscapes_model_parameter_count():
    cfg = Config.fromfile(str(CITYSCAPES))
    cfg.model.backbone.init_cfg = None  # no checkpoint in tests
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MMSEG_MODELS.build(cfg.model)
    assert isinstance(model.backbone, DilatedResNet) and isinstance(model.decode_head, ASPPHead)
    backbone, head = count(model.backbone), count(model.decode_head)
    print(f'DeepLabv2 R101 Cityscapes: backbone {backbone:,}, head {head:,}, '
          f'total {count(model):,}')
    assert backbone == resnet_param_count(STAGE_BLOCKS[101]) == R101_BACKBONE_PARAMS
    assert backbone == count(ResNet(depth=101))
    assert head == aspp_l_param_count(2048, 19) == ASPP_L_19_PARAMS
    assert count(model) == backbone + head == DEEPLABV2_R101_CITYSCAPES_PARAMS
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert tuple(logits.shape) == (1, 19, 8, 8)
