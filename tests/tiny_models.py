"""Small models and configs for tests: real code paths at a fraction of the cost."""
from pathlib import Path
from typing import Tuple

from mmseg_hrplus.testing import tiny_hrnet_extra

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
