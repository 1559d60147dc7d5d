"""BiSeNetV2's booster head: an auxiliary seg head on an intermediate map, training only.

The "booster training strategy" (Yu et al. 2021, Sec. 4.4) adds a seg head on several
intermediate maps of the semantic branch (Stem, stages 3, 4, 5 before the Context Embedding)
and sums their losses with the main loss. The heads are dropped at inference, so they cost
nothing there: put them in a segmentor's ``auxiliary_head`` list, which mmseg's
``EncoderDecoder`` only runs in ``loss`` (never in ``predict``, ``test_step`` nor the
``'tensor'`` forward that FLOP counters trace).
"""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmseg_hrplus.models.utils import FeatureSpec, check_in_channels
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_int


@MODELS.register_module()
class BoosterHead(BaseDecodeHead):
    """Booster seg head: ``num_convs`` 3x3 conv-BN-ReLU, dropout, 1x1 classifier.

    The paper's seg head has one 3x3 conv-BN-ReLU (``num_convs=1``, the default). mmseg's
    BiSeNetV2 configs use two (``num_convs=2``) with widths 16, 64, 256 and 1024 on the four
    taps; with those settings the state dict has the layout of mmseg's ``FCNHead``
    (``convs.{i}.conv/bn``, ``conv_seg``), so mmseg auxiliary heads load unchanged.

    CoinCheung/BiSeNet's booster heads are a variant: a 3x3 conv-BN-ReLU to 128 channels,
    nearest x2 upsampling, a second 3x3 conv-BN-ReLU to 16/64/256/1024 channels, then the
    classifier. That is ``num_convs=2, hidden_channels=128, upsample_before_last_conv=2`` with
    ``channels`` = the second width (same state-dict layout). Their dropout sits after the
    first conv, ours before the classifier (training only; inference is the same).

    Args:
        in_channels: channels of the map at ``in_index``.
        channels: width of the 3x3 convs (the paper's C_t).
        in_index: which backbone output to read (one int).
        num_convs: number of 3x3 conv-BN-ReLU before the classifier (>= 1).
        kernel_size: of those convs (odd).
        hidden_channels: output width of every 3x3 conv but the last (None: ``channels``);
            the last conv outputs ``channels``, which the classifier reads.
        upsample_before_last_conv: nearest-neighbour upsampling factor applied just before the
            last 3x3 conv (1: none, the default; > 1 needs ``num_convs >= 2``). The logits
            are then at that multiple of the tap's resolution.
        **kwargs: the rest of :class:`BaseDecodeHead`'s arguments (``num_classes``,
            ``dropout_ratio``, ``norm_cfg`` (default BN here, not None), ``loss_decode``, ...).

    Shape:
        forward: backbone outputs -> logits (N, num_classes, s * H_in, s * W_in) with
        ``s = upsample_before_last_conv``; the loss upsamples them to the label size.
    """

    def __init__(self, in_channels: int, channels: int, *, in_index: int, num_convs: int = 1,
                 kernel_size: int = 3, hidden_channels: Optional[int] = None,
                 upsample_before_last_conv: int = 1, **kwargs) -> None:
        check_int('in_channels', in_channels)
        check_int('channels', channels)
        if not isinstance(in_index, int) or isinstance(in_index, bool):
            raise ValueError(f'in_index must be one int (BoosterHead reads one map), '
                             f'got {in_index!r}')
        check_int('num_convs', num_convs)
        if check_int('kernel_size', kernel_size) % 2 == 0:
            raise ValueError(f'kernel_size must be odd to keep the map size, got {kernel_size}')
        if hidden_channels is not None:
            check_int('hidden_channels', hidden_channels)
        check_int('upsample_before_last_conv', upsample_before_last_conv)
        if upsample_before_last_conv > 1 and num_convs < 2:
            raise ValueError(f'upsample_before_last_conv={upsample_before_last_conv} needs '
                             f'num_convs >= 2 (it upsamples between the last two convs), got '
                             f'num_convs={num_convs}; use upsample_before_last_conv=1 with one '
                             f'conv')
        transform = kwargs.pop('input_transform', None)
        if transform is not None:
            raise ValueError(f'input_transform must be None (BoosterHead reads one map), '
                             f'got {transform!r}')
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        super().__init__(in_channels, channels, in_index=in_index, **kwargs)
        self.num_convs = num_convs
        self.hidden_channels = channels if hidden_channels is None else hidden_channels
        self.upsample_before_last_conv = upsample_before_last_conv
        widths = [in_channels] + [self.hidden_channels] * (num_convs - 1) + [channels]
        self.convs = nn.Sequential(*(
            ConvModule(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2,
                       conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
            for i in range(num_convs)))

    def check_inputs(self, specs: Sequence[FeatureSpec]) -> Tuple[FeatureSpec, ...]:
        """Check ``in_channels``/``in_index`` against a backbone's ``out_specs``.

        Returns:
            The selected spec, in a 1-tuple.

        Raises:
            ValueError: when the index is out of range or the channels differ.
        """
        return check_in_channels(type(self).__name__, self.in_channels, self.in_index, specs)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Classify the map at ``in_index``: (N, C_in, h, w) -> (N, num_classes, s*h, s*w)."""
        x = self._transform_inputs(inputs)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            if i == last and self.upsample_before_last_conv > 1:
                x = F.interpolate(x, scale_factor=self.upsample_before_last_conv,
                                  mode='nearest')
            x = conv(x)
        return self.cls_seg(x)
