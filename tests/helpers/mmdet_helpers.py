"""What the HRNetV2p detector tests share: mmdet's own HRNet configs, building a detector without
downloads, weights that keep a random HRNet's activations small, and the real frame as a batch."""
import os.path as osp
from pathlib import Path
from typing import Any

import mmcv
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import get_installed_path

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_CONFIGS = REPO_ROOT / 'configs' / 'mmdet'
#: mmdet's HRNetV2p detector configs (W18, W32, W40).
MMDET_HRNET_CONFIGS = Path(get_installed_path('mmdet')) / '.mim' / 'configs' / 'hrnet'
FRAME = osp.join('leftImg8bit', 'val', 'frankfurt', 'frankfurt_000000_000294_leftImg8bit.png')


def our_config(name: str) -> Config:
    return Config.fromfile(str(OUR_CONFIGS / name))


def mmdet_config(name: str) -> Config:
    return Config.fromfile(str(MMDET_HRNET_CONFIGS / name))


def build_detector(cfg: Config, device: str = 'cpu') -> torch.nn.Module:
    """``cfg.model`` built in the mmdet scope on ``device``, backbone ``init_cfg`` dropped (no
    download). ``device='meta'`` gives the module structure and parameter shapes only."""
    from mmdet.registry import MODELS
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'), torch.device(device):
        return MODELS.build(cfg.model)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def without_scope_keys(node: Any) -> Any:
    """A plain copy of a config node without mmengine's ``_scope_`` marks (added to every dict
    of a config read through ``mmdet::``), so an overlay and mmdet's file compare equal."""
    if isinstance(node, dict):
        return {k: without_scope_keys(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return [without_scope_keys(v) for v in node]
    return node


def randomize_backbone_and_neck_(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights and BN statistics that keep activations O(10) through W32; heads get
    mmdet's own ``init_weights``.

    mmdet's init of the backbone (Kaiming, BN statistics 0/1) makes a random HRNet's outputs
    ~1e8, so every box decodes out of the image and nothing is left to compare.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in list(model.backbone.modules()) + list(model.neck.modules()):
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight[0].numel()**.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.01)
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    for name in ('rpn_head', 'roi_head', 'bbox_head'):
        head = getattr(model, name, None)
        if head is not None:
            head.init_weights()


def frame_batch(model: torch.nn.Module, cityscapes_sample: Path, size=(256, 128)) -> dict:
    """The real frame resized to ``size`` (w, h), through ``model``'s data preprocessor.

    Returns:
        ``dict(inputs=(1, 3, h, w) float tensor, data_samples=[DetDataSample])``.
    """
    from mmdet.structures import DetDataSample
    img = mmcv.imresize(mmcv.imread(str(cityscapes_sample / FRAME)), size)
    h, w = img.shape[:2]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))
    data = dict(inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()],
                data_samples=[DetDataSample(metainfo=meta)])
    return model.data_preprocessor(data, False)


def same_weight_detectors(ref_cfg: Config, our_cfg: Config):
    """mmdet's detector with :func:`randomize_backbone_and_neck_` weights and ours with its
    state dict loaded strictly, both in eval mode: ``(ref, ours)``."""
    ref = build_detector(ref_cfg)
    randomize_backbone_and_neck_(ref)
    ours = build_detector(our_cfg)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


def assert_equal_features(ref: torch.nn.Module, ours: torch.nn.Module, inputs: torch.Tensor):
    """``extract_feat`` of both detectors on ``inputs``, asserted bit for bit equal (the
    message gives the largest difference); returns ``(feats_ref, feats_ours)``."""
    with torch.no_grad():
        feats_ref, feats_ours = ref.extract_feat(inputs), ours.extract_feat(inputs)
    assert [tuple(f.shape) for f in feats_ours] == [tuple(f.shape) for f in feats_ref]
    diff = max((a - b).abs().max().item() for a, b in zip(feats_ref, feats_ours))
    assert all(torch.equal(a, b) for a, b in zip(feats_ref, feats_ours)), diff
    return feats_ref, feats_ours
