"""Small models and configs for tests: real code paths at a fraction of the cost.

Test helpers only (formerly ``mmseg_hrplus/testing.py``, which shipped them in the library):
nothing in the package or ``tools/`` uses them. Imported as
``from tests.helpers.tiny_models import tiny_hrnet_extra``.
"""
from pathlib import Path
from typing import Dict, Sequence, Tuple

import torch


def tiny_hrnet_extra(widths: Sequence[int] = (4, 8, 16, 32), stem_channels: int = 8,
                     num_modules: Sequence[int] = (1, 1, 1)) -> Dict[str, dict]:
    """An mmseg-style ``extra`` for :class:`~mmseg_hrplus.models.backbones.HRNet`.

    Four streams at strides 4, 8, 16, 32 like every preset, one block per branch, stage 1 a
    Bottleneck with ``stem_channels`` planes (``4 * stem_channels`` out), so every kind of fusion
    path (up, down, multi-hop down) is present.

    Args:
        widths: channels of streams 0..3 (the presets use C, 2C, 4C, 8C).
        stem_channels: planes of the stage-1 Bottleneck.
        num_modules: modules of stages 2, 3 and 4 (more modules = more fusions).

    Returns:
        ``dict(stage1=..., stage2=..., stage3=..., stage4=...)``.
    """
    extra = dict(stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                             num_blocks=(1, ), num_channels=(stem_channels, )))
    for stage, modules in zip((2, 3, 4), num_modules):
        extra[f'stage{stage}'] = dict(num_modules=modules, num_branches=stage, block='BASIC',
                                      num_blocks=(1, ) * stage, num_channels=tuple(widths[:stage]))
    return extra


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |got - expected| / max |expected|``: the error of ``got`` relative to the scale of
    ``expected`` (not elementwise, so near-zero entries do not blow it up)."""
    return float((got - expected).abs().max() / expected.abs().max())


def randomize_conv_bn_(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Overwrite every conv and BN of ``model`` with random values from ``seed``, in place.

    Conv weights are He-normal (std ``sqrt(2 / fan_in)``, so activations keep their scale
    through deep nets), conv biases ``N(0, 0.1)``; BN weights lie in [0.5, 1), biases and
    running means are ``N(0, 0.1)``, running variances lie in [0.5, 1.5). With non-trivial BN
    statistics an eval-mode comparison tests the statistics too (default ones are the identity).
    Two models given the same ``state_dict`` afterwards compute the same function.

    Returns:
        ``model``.
    """
    from torch.nn.modules.batchnorm import _BatchNorm
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_in)**0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, _BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


#: An HRNet (4/8/16/32 channels, one block per branch) + mmseg FCNHead segmentor config, SyncBN
#: as in the zoo configs; ``{backbone}`` and ``{pretrained}`` are filled in.
TINY_HRNET_FCN_CONFIG = """
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3),
    pretrained={pretrained!r},
    backbone=dict(type={backbone!r}, norm_cfg=norm_cfg, extra={extra!r}),
    decode_head=dict(type='FCNHead', in_channels=[4, 8, 16, 32], in_index=(0, 1, 2, 3),
                     channels=60, input_transform='resize_concat', kernel_size=1, num_convs=1,
                     concat_input=False, dropout_ratio=-1, num_classes=5, norm_cfg=norm_cfg,
                     align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
"""


def write_tiny_hrnet_fcn_configs(folder: Path) -> Tuple[Path, Path]:
    """``folder/ours.py`` (our HRNet) and ``folder/ref.py`` (mmseg's HRNet, naming a checkpoint
    that does not exist: a tool that builds it must not load it), the same tiny segmentor."""
    extra = tiny_hrnet_extra()
    ours, ref = Path(folder) / 'ours.py', Path(folder) / 'ref.py'
    ours.write_text(TINY_HRNET_FCN_CONFIG.format(backbone='mmseg_hrplus.HRNet', extra=extra,
                                                 pretrained=None))
    ref.write_text(TINY_HRNET_FCN_CONFIG.format(backbone='HRNet', extra=extra,
                                                pretrained=str(Path(folder) / 'missing.pth')))
    return ours, ref


def calibrated_tiny_hrnet_fcn(folder: Path, optimized: bool = False) -> torch.nn.Module:
    """Our tiny HRNet+FCN (:func:`write_tiny_hrnet_fcn_configs`) in eval mode, its BN statistics
    calibrated so that its logits are not vanishingly small, optionally through
    ``optimize_for_inference``: the model the runtime-peer tests export."""
    from mmseg_hrplus.benchmark.build import build_model
    from mmseg_hrplus.benchmark.weights import calibrate_bn
    from mmseg_hrplus.deploy import optimize_for_inference
    ours, _ = write_tiny_hrnet_fcn_configs(folder)
    model = build_model(str(ours))
    calibrate_bn(model, (2, 3, 64, 64))
    model.eval()
    return optimize_for_inference(model) if optimized else model
