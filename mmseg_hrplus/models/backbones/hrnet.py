"""HRNet backbone (Wang et al., "Deep High-Resolution Representation Learning").

The network keeps a 1/4-resolution stream from the stem to the end and adds one lower-resolution
stream per stage (1/8, 1/16, 1/32); every HR module ends with a fusion in which each output
stream sums resampled versions of all input streams.

Architectures are picked by name (``arch='w48'``, see :data:`ARCH_PRESETS`) or, for drop-in
use with mmseg/mmdet configs and code, by their ``extra`` dict (``extra=...`` or, as in mmseg,
the first positional argument). State-dict keys are those of the official
HRNet, mmseg's and mmdet's ``HRNet`` (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``,
``transition1..3``, ``stage2..4.{module}.branches/fuse_layers``), so their checkpoints load
unchanged.

Fusion modes:

* ``fusion_mode='official'`` (default), the released code: a lower stream reaching a higher one
  goes through 1x1 conv + BN and is then upsampled (``fuse_order='conv_first'``); the new stream
  of the next stage is made after the fusion by one 3x3 stride-2 conv + BN + ReLU from the
  lowest stream only (``new_branch='from_lowest'``).
* ``fusion_mode='paper'``, the paper's text and figure: upsample first, then 1x1 conv + BN
  (``fuse_order='upsample_first'``); the new stream is one more output of the last fusion of a
  stage, summed over strided-conv paths from every existing stream
  (``new_branch='from_all'``). Its extra weights are stored as the extra fusion row
  ``stage{2,3}.{last}.fuse_layers.{new}``; the official ``transition{2,3}.{new}`` is absent.

The two orders are equal in eval mode (1x1 conv, eval BN and the resampling are all linear and
interpolation weights sum to one). In training they differ through the BN statistics when
upsampling is bilinear (it smooths, so the BN after it sees a smaller variance); nearest
upsampling by exactly 2**k replicates pixels and keeps mean and variance, so there the orders
agree in training too. The paper order always costs more FLOPs (4^k times more pixels in the
1x1 conv). ``fuse_order`` and ``new_branch`` can be set on
their own; ``fusion_mode`` only supplies their defaults.

Resampling: an upsampling path ends at the exact size of the stream it joins, so any input size
works in every mode. When that size is ``2**k`` times the source (input sides multiple of 32, and
also e.g. 509x1021, whose streams are 128x256 ... 16x32) this is ONE resize, and it gives the
numbers of mmseg's two-step path (upsample by ``2**k``, then resize to the target, which is then
an identity) and of mmdet's nearest ``nn.Upsample``. When a stream size is odd, e.g. a 97-pixel
side (25 -> 13 -> 7 -> 4), bilinear mode keeps mmseg's two steps (13 -> 26 -> 25), because a
direct 13 -> 25 resize blurs less and gave outputs up to 10% different from mmseg's (3.0 on
outputs of magnitude 30, random weights): mmseg-trained checkpoints would then not reproduce
mmseg's numbers on such inputs (e.g. ADE20K whole-image inference). ``fuse_resize='single'``
selects the official HRNet code's one direct resize instead (after the 1x1 conv + BN), which
its checkpoints need on such sizes. Nearest mode always resizes once: floor(floor(x) / 2) =
floor(x / 2), so the two steps would select the same pixels.
Fusion sums are accumulated in place.

Representations are head configurations of mmseg's ``FCNHead`` (no extra module needed):

* HRNetV1 (highest-resolution stream only)::

      decode_head=dict(type='FCNHead', in_channels=48, in_index=0, channels=48, ...)

* HRNetV2 (all streams upsampled to 1/4 and concatenated: 48 + 96 + 192 + 384 = 720 for W48)::

      decode_head=dict(type='FCNHead', in_channels=[48, 96, 192, 384], in_index=(0, 1, 2, 3),
                       input_transform='resize_concat', channels=720, ...)

* HRNetV2p (V2 then a pyramid, for detection) is ``mmseg_hrplus.HRNetV2pNeck``.

Example:
    >>> import torch
    >>> from mmseg_hrplus.models.backbones import HRNet
    >>> net = HRNet(arch='w18_small').eval()
    >>> [tuple(y.shape) for y in net(torch.rand(1, 3, 64, 128))]
    [(1, 18, 16, 32), (1, 36, 8, 16), (1, 72, 4, 8), (1, 144, 2, 4)]
    >>> [tuple(spec) for spec in net.out_specs]  # (channels, stride)
    [(18, 4), (36, 8), (72, 16), (144, 32)]
"""
from dataclasses import dataclass
from typing import (Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule, Sequential
from mmengine.model.weight_init import constant_init
from mmseg.models.backbones.resnet import BasicBlock, Bottleneck
from mmseg.models.utils import resize
from torch import Tensor

from mmseg_hrplus.models.utils.checkpointing import run_blocks
from mmseg_hrplus.models.utils.feature_spec import FeatureSpec
from mmseg_hrplus.models.utils.freezing import freeze, keep_norm_eval
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_bool, check_choice, check_int

ConfigType = Dict
BLOCKS = {'BASIC': BasicBlock, 'BOTTLENECK': Bottleneck}
STEM_CHANNELS = 64


class StageSpec(NamedTuple):
    """One stage: ``num_modules`` HR modules whose branch ``b`` stacks ``num_blocks[b]`` blocks
    of type ``block`` with ``num_channels[b]`` planes (times the block expansion)."""

    block: str
    num_modules: int
    num_blocks: Tuple[int, ...]
    num_channels: Tuple[int, ...]


class ArchPreset(NamedTuple):
    """A standard HRNet: stage 1 is ``stem_blocks`` Bottlenecks of ``stage1_planes`` planes
    (``4 * stage1_planes`` channels out); stage s = 2..4 has s branches of width
    ``width * 2**b``, ``branch_blocks`` BasicBlocks per branch and ``modules[s - 2]`` HR
    modules. The two stem convs are 64 wide in every preset (as in the official code)."""

    width: int
    stem_blocks: int
    branch_blocks: int
    modules: Tuple[int, int, int]
    stage1_planes: int = STEM_CHANNELS

    def stages(self) -> Tuple[StageSpec, ...]:
        stage1 = StageSpec('BOTTLENECK', 1, (self.stem_blocks, ), (self.stage1_planes, ))
        rest = tuple(
            StageSpec('BASIC', self.modules[s - 2], (self.branch_blocks, ) * s,
                      tuple(self.width * 2**b for b in range(s))) for s in (2, 3, 4))
        return (stage1, ) + rest


#: Named architectures (official/mmseg HRNetV2 configurations). 'w18_small' is the official
#: W18-Small-v2 (mmseg's hrnetv2_w18_small / fcn_hr18s); 'w18_small_v1' is the official
#: W18-Small-v1: widths 16/32/64/128 despite its name, one module per stage, two blocks per
#: branch and a single 32-plane Bottleneck (128 channels) in stage 1.
ARCH_PRESETS: Dict[str, ArchPreset] = {
    #                        width  stem_blocks  branch_blocks  modules (stages 2, 3, 4)
    'w18_small': ArchPreset(18, 2, 2, (1, 3, 2)),
    'w18': ArchPreset(18, 4, 4, (1, 4, 3)),
    'w32': ArchPreset(32, 4, 4, (1, 4, 3)),
    'w40': ArchPreset(40, 4, 4, (1, 4, 3)),
    'w48': ArchPreset(48, 4, 4, (1, 4, 3)),
    'w18_small_v1': ArchPreset(16, 1, 2, (1, 1, 1), stage1_planes=32),
}

#: ``fusion_mode`` -> (``fuse_order``, ``new_branch``).
FUSION_MODES: Dict[str, Tuple[str, str]] = {
    'official': ('conv_first', 'from_lowest'),
    'paper': ('upsample_first', 'from_all'),
}
FUSE_ORDERS = ('conv_first', 'upsample_first')
NEW_BRANCH_RULES = ('from_lowest', 'from_all')
UPSAMPLE_MODES = ('bilinear', 'nearest')
FUSE_RESIZES = ('two_step', 'single')
_EXTRA_STAGE_KEYS = ('num_modules', 'num_branches', 'block', 'num_blocks', 'num_channels')


@dataclass(frozen=True)
class FusionSettings:
    """How every HR module's fusion exchanges its streams (see the module notes), validated
    once here and handed to each :class:`HRModule` and :class:`HRFusion`.

    Attributes:
        fuse_order: 'conv_first' (official) or 'upsample_first' (paper) for lower-to-higher
            paths.
        new_branch: 'from_lowest' (official) or 'from_all' (paper).
        upsample_mode: 'bilinear' (mmseg) or 'nearest' (mmdet).
        align_corners: for bilinear upsampling; None with 'nearest' (True is refused there).
        fuse_resize: 'two_step' (mmseg) or 'single' (the official code), bilinear mode only.
    """

    fuse_order: str = 'conv_first'
    new_branch: str = 'from_lowest'
    upsample_mode: str = 'bilinear'
    align_corners: Optional[bool] = False
    fuse_resize: str = 'two_step'

    def __post_init__(self) -> None:
        check_choice('fuse_order', self.fuse_order, FUSE_ORDERS)
        check_choice('new_branch', self.new_branch, NEW_BRANCH_RULES)
        check_choice('upsample_mode', self.upsample_mode, UPSAMPLE_MODES)
        check_choice('fuse_resize', self.fuse_resize, FUSE_RESIZES)
        if self.upsample_mode == 'nearest':
            if self.align_corners:
                raise ValueError(f'align_corners={self.align_corners!r} needs '
                                 f'upsample_mode=\'bilinear\', got upsample_mode=\'nearest\'')
            object.__setattr__(self, 'align_corners', None)

    @classmethod
    def from_mode(cls, fusion_mode: str = 'official', fuse_order: Optional[str] = None,
                  new_branch: Optional[str] = None, **kwargs) -> 'FusionSettings':
        """The settings of ``fusion_mode`` (:data:`FUSION_MODES`), with ``fuse_order`` and
        ``new_branch`` overriding its defaults when given; ``kwargs``: the other fields."""
        check_choice('fusion_mode', fusion_mode, tuple(FUSION_MODES))
        default_order, default_branch = FUSION_MODES[fusion_mode]
        return cls(fuse_order=default_order if fuse_order is None else fuse_order,
                   new_branch=default_branch if new_branch is None else new_branch, **kwargs)

    @property
    def upsample_first(self) -> bool:
        return self.fuse_order == 'upsample_first'


def arch_to_extra(arch: str) -> dict:
    """The mmseg/mmdet ``extra`` dict of a preset (to build their ``HRNet`` identically)."""
    check_choice('arch', arch, tuple(ARCH_PRESETS))
    return {
        f'stage{s + 1}': dict(num_modules=spec.num_modules, num_branches=len(spec.num_blocks),
                              block=spec.block, num_blocks=spec.num_blocks,
                              num_channels=spec.num_channels)
        for s, spec in enumerate(ARCH_PRESETS[arch].stages())
    }


def extra_to_stages(extra: dict) -> Tuple[StageSpec, ...]:
    """Validate an mmseg-style ``extra`` dict and turn it into four :class:`StageSpec`."""
    if not isinstance(extra, dict):
        raise ValueError(f'extra must be a dict with keys stage1..stage4, got {type(extra)}')
    stages = []
    for s in range(1, 5):
        cfg = extra.get(f'stage{s}')
        if cfg is None:
            raise ValueError(f'extra has no stage{s}; it needs stage1, stage2, stage3, stage4')
        missing = [k for k in _EXTRA_STAGE_KEYS if k not in cfg]
        if missing:
            raise ValueError(f'extra["stage{s}"] lacks {missing}; each stage needs '
                             f'{list(_EXTRA_STAGE_KEYS)}')
        # 'fuse_method' appears in official/mmpose configs; 'SUM' is what every HRNet does.
        unknown = set(cfg) - set(_EXTRA_STAGE_KEYS) - {'fuse_method'}
        if unknown or cfg.get('fuse_method', 'SUM') != 'SUM':
            raise ValueError(f'extra["stage{s}"] has unsupported entries {sorted(unknown)} or '
                             f'fuse_method={cfg.get("fuse_method")!r}; allowed keys: '
                             f'{list(_EXTRA_STAGE_KEYS)} and fuse_method=\'SUM\'')
        check_choice(f'extra["stage{s}"]["block"]', cfg['block'], tuple(BLOCKS))
        if cfg['num_branches'] != s:
            raise ValueError(f'extra["stage{s}"]["num_branches"]={cfg["num_branches"]}: stage '
                             f'{s} of HRNet has exactly {s} branch(es)')
        for key in ('num_blocks', 'num_channels'):
            if len(cfg[key]) != s:
                raise ValueError(f'extra["stage{s}"]["{key}"]={tuple(cfg[key])} must have '
                                 f'num_branches={s} entries')
        if cfg['num_modules'] < 1 or (s == 1 and cfg['num_modules'] != 1):
            raise ValueError(f'extra["stage{s}"]["num_modules"]={cfg["num_modules"]} must be '
                             f'>= 1 (exactly 1 for stage1)')
        stages.append(StageSpec(cfg['block'], int(cfg['num_modules']),
                                tuple(int(b) for b in cfg['num_blocks']),
                                tuple(int(c) for c in cfg['num_channels'])))
    return tuple(stages)


def _conv_norm(in_channels: int, out_channels: int, kernel_size: int, stride: int,
               conv_cfg: Optional[ConfigType], norm_cfg: ConfigType,
               relu: bool) -> nn.Sequential:
    """conv (no bias) + norm [+ ReLU] as a plain Sequential: children ``0``/``1`` are the key
    names of the official checkpoints, which mmcv's ConvModule (``conv``/``bn``) would break."""
    layers = [
        build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2, bias=False),
        build_norm_layer(norm_cfg, out_channels)[1],
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def make_blocks(block: str, in_channels: int, planes: int, num_blocks: int,
                conv_cfg: Optional[ConfigType], norm_cfg: ConfigType) -> Sequential:
    """A branch: ``num_blocks`` residual blocks; the first projects ``in_channels`` with a
    1x1 conv + norm when they differ from ``planes * expansion``. Used for ``layer1`` and for
    every HR-module branch. Checkpointing is done by :func:`run_blocks`, not by the blocks."""
    cls = BLOCKS[block]
    out_channels = planes * cls.expansion
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(
            build_conv_layer(conv_cfg, in_channels, out_channels, 1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])
    layers = [cls(in_channels, planes, downsample=downsample, conv_cfg=conv_cfg,
                  norm_cfg=norm_cfg)]
    layers += [cls(out_channels, planes, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
               for _ in range(1, num_blocks)]
    return Sequential(*layers)


class HRFusion(nn.ModuleList):
    """The exchange unit: output ``i`` is ``ReLU(sum_j f_ij(x_j))``.

    Row ``i`` of this ModuleList holds the paths ``f_ij`` (index ``j``): ``None`` for ``j == i``
    (identity); for ``j > i`` (lower resolution in) a 1x1 conv + norm, combined with a resize
    to ``x_i``'s size in the order ``fuse_order``; for ``j < i`` a chain of ``i - j`` stride-2
    3x3 conv + norm, with ReLU after all but the last, the last mapping to ``C_i`` channels.
    Rows past the inputs (``i >= len(x)``) make new lower streams (paper's new branch).

    Args:
        in_channels: channels of the input streams, highest resolution first.
        out_channels: channels of the outputs; ``out_channels[i] == in_channels[i]`` for every
            existing stream, extra entries are new lower streams.
        fusion: the fuse order and the resize (:class:`FusionSettings`): ``fuse_resize``
            'two_step' (mmseg: by ``2**k``, then to the target size when they differ) or
            'single' (the official code: one resize straight to the target size).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int],
                 fusion: FusionSettings, conv_cfg: Optional[ConfigType],
                 norm_cfg: ConfigType):
        rows = []
        for i, c_out in enumerate(out_channels):
            row: List[Optional[nn.Module]] = []
            for j, c_in in enumerate(in_channels):
                if j == i:
                    row.append(None)
                elif j > i:
                    row.append(_conv_norm(c_in, c_out, 1, 1, conv_cfg, norm_cfg, relu=False))
                else:
                    hops = [_conv_norm(c_in, c_in, 3, 2, conv_cfg, norm_cfg, relu=True)
                            for _ in range(i - j - 1)]
                    hops.append(_conv_norm(c_in, c_out, 3, 2, conv_cfg, norm_cfg, relu=False))
                    row.append(nn.Sequential(*hops))
            rows.append(nn.ModuleList(row))
        super().__init__(rows)
        self.fusion = fusion

    def _resize(self, x: Tensor, size: torch.Size, hops: int) -> Tensor:
        """Upsample ``x`` by ``2**hops`` to exactly ``size`` (see the module notes)."""
        fusion = self.fusion
        if fusion.upsample_mode == 'bilinear' and fusion.fuse_resize == 'two_step':
            doubled = [n * 2**hops for n in x.shape[2:]]
            # Odd stream sizes: mmseg's two steps, for its numbers. A trace (ONNX export) would
            # freeze this size test at the example input, so it always takes both steps; the
            # second is then an exact identity whenever the sizes already agree.
            if torch.jit.is_tracing() or doubled != list(size):
                x = resize(x, size=doubled, mode='bilinear', align_corners=fusion.align_corners,
                           warning=False)
        return resize(x, size=size, mode=fusion.upsample_mode, align_corners=fusion.align_corners,
                      warning=False)

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        """Args: xs: ``len(in_channels)`` tensors ``(N, C_j, H_j, W_j)``, ``H_{j+1} =
        ceil(H_j / 2)``. Returns: ``len(out_channels)`` tensors ``(N, C_i, H_i, W_i)``."""
        outs = []
        upsample_first = self.fusion.upsample_first
        for i, row in enumerate(self):
            y: Optional[Tensor] = None
            owned = False  # True once y is our own buffer and may be accumulated in place
            for j, (path, x) in enumerate(zip(row, xs)):
                if path is None:
                    term = x
                elif j > i and upsample_first:
                    term = path(self._resize(x, xs[i].shape[2:], j - i))
                elif j > i:
                    term = self._resize(path(x), xs[i].shape[2:], j - i)
                else:
                    term = path(x)
                # In-place sums only touch tensors made here (conv/BN/resize outputs, whose
                # backward does not read them); float addition commutes, so `term += y`
                # is bit-identical to `y + term` and saves allocating the 1/4-res sum.
                if y is None:
                    y, owned = term, path is not None
                elif owned:
                    y += term
                elif path is not None:
                    term += y
                    y, owned = term, True
                else:
                    y, owned = y + term, True
            outs.append(F.relu(y, inplace=owned))
        return outs


class HRModule(BaseModule):
    """One HR module: a residual branch per stream, then an :class:`HRFusion`.

    Args:
        block: 'BASIC' or 'BOTTLENECK'.
        num_blocks: blocks per branch.
        in_channels: channels entering each branch.
        num_channels: planes of each branch (its output has ``planes * expansion`` channels).
        fuse_out_channels: channels of the fusion outputs (see :class:`HRFusion`); ``None``
            means one output per branch.
        fusion: see :class:`HRFusion`.
        with_cp: gradient checkpointing of every block.
    """

    def __init__(self, block: str, num_blocks: Sequence[int], in_channels: Sequence[int],
                 num_channels: Sequence[int], fuse_out_channels: Optional[Sequence[int]],
                 fusion: FusionSettings, with_cp: bool, conv_cfg: Optional[ConfigType],
                 norm_cfg: ConfigType):
        super().__init__()
        self.branches = nn.ModuleList(
            make_blocks(block, c_in, planes, n, conv_cfg, norm_cfg)
            for c_in, planes, n in zip(in_channels, num_channels, num_blocks))
        self.out_channels = [c * BLOCKS[block].expansion for c in num_channels]
        fuse_out = list(fuse_out_channels or self.out_channels)
        self.fuse_layers = HRFusion(self.out_channels, fuse_out, fusion, conv_cfg, norm_cfg)
        self.fuse_out_channels = fuse_out
        self.with_cp = with_cp

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        """Args: xs: one ``(N, C_b, H_b, W_b)`` tensor per branch. Returns: the fusion
        outputs, ``(N, fuse_out_channels[i], H_i, W_i)``."""
        xs = [run_blocks(branch, x, self.with_cp) for branch, x in zip(self.branches, xs)]
        return self.fuse_layers(xs)


@MODELS.register_module()
class HRNet(BaseModule):
    """HRNet backbone returning the streams of the last stage.

    The positional order is that of mmseg's ``HRNet`` (``extra, in_channels, conv_cfg,
    norm_cfg, norm_eval, with_cp, frozen_stages, zero_init_residual, multiscale_output,
    pretrained, init_cfg``), so ``HRNet(extra, frozen_stages=2)`` ports unchanged; mmdet's
    ``HRNet`` has the same order up to ``with_cp`` and no ``frozen_stages``. The options of our
    own (``extra=`` and the fusion settings) are keyword-only.

    Args:
        arch: the architecture: a preset name, one of :data:`ARCH_PRESETS` ('w18_small', 'w18',
            'w32', 'w40', 'w48', 'w18_small_v1'), or an mmseg/mmdet-style ``extra`` dict (as
            mmseg's first argument). Default (when neither ``arch`` nor ``extra`` is given): 'w48'.
        in_channels: image channels.
        conv_cfg: mmcv conv config (None: ``nn.Conv2d``).
            ``dict(type='mmseg_hrplus.WinogradConv2d')`` computes the wide 3x3 convs by
            Winograd F(4x4, 3x3) on CPU: same weights and keys, faster training steps.
        norm_cfg: mmcv norm config, e.g. ``dict(type='SyncBN', requires_grad=True)``.
        norm_eval: keep BN layers in eval mode while training (frozen statistics). mmdet's
            HRNet defaults to True: set it explicitly when porting an mmdet config.
        with_cp: gradient checkpointing per residual block (less memory, one more forward).
            BN running statistics are updated once per step, as without it.
        frozen_stages: -1 freezes nothing; 0 the stem; k >= 1 also ``layer1``/``stage2..k``
            with the transition leaving each (``transition1..k``; paper new-stream rows sit in
            their stage), i.e. everything computing the inputs of stage k + 1. Max 4.
        zero_init_residual: after ``init_weights``, set the weight of the last norm of every
            residual block (``bn3`` of Bottlenecks, ``bn2`` of BasicBlocks) to zero, so each
            block starts as the identity. Skipped when ``init_cfg`` loads a checkpoint.
        multiscale_output: return all four streams (True) or the 1/4 stream only.
        pretrained: deprecated mmseg argument (segmentors pass ``model.pretrained`` here); same
            as ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        init_cfg: mmengine init config. Default: Kaiming for convs, 1 for norm weights.
        extra: keyword form of an ``extra`` dict (``stage1``..``stage4`` with
            ``num_modules``, ``num_branches``, ``block``, ``num_blocks``, ``num_channels``);
            exclusive with ``arch``.
        fusion_mode: 'official' or 'paper': the defaults of ``fuse_order`` and ``new_branch``.
        fuse_order: 'conv_first' (official) or 'upsample_first' (paper) for lower-to-higher
            fusion paths; ``None`` takes it from ``fusion_mode``.
        new_branch: 'from_lowest' (official: a strided conv from the fused lowest stream, in
            ``transition{s}``) or 'from_all' (paper: an extra output of the stage's last
            fusion); ``None`` takes it from ``fusion_mode``.
        upsample_mode: 'bilinear' (mmseg) or 'nearest' (mmdet).
        align_corners: for bilinear upsampling (False in mmseg); must stay None/False with
            'nearest'.
        fuse_resize: how a lower stream reaches a higher one's size in bilinear mode:
            'two_step' (default, mmseg's numbers: upsample by ``2**k``, then resize to the
            target if the sizes differ) or 'single' (the official HRNet code: one resize
            straight to the target). They agree whenever the target is ``2**k`` times the
            source; on odd stream sizes (e.g. a 250x500 input, 1/4 stream 63x125) only
            'single' reproduces official checkpoints. Nearest mode always resizes once.
        channels_last: keep the 4-D weights and compute in ``torch.channels_last`` (NHWC)
            layout: the input is converted at the start of ``forward``, and the streams come
            out NHWC. Same parameters, keys and results up to float rounding; checkpoints
            load either way. On CPU it makes oneDNN skip a layout reorder per conv, and with
            Winograd convs (``conv_cfg``) the tiling reads contiguous channels; how much
            faster a model trains with it depends on the machine (measured: the README's
            speed section). On GPUs it is the layout tensor cores want under AMP.

    Shapes:
        input ``(N, in_channels, H, W)`` of any size; output ``out_specs``-many tensors, stream
        ``b`` of shape ``(N, C_b, H_b, W_b)`` with ``H_0 = ceil(ceil(H / 2) / 2)`` and
        ``H_{b+1} = ceil(H_b / 2)`` (strides 4, 8, 16, 32).
    """

    def __init__(self,
                 arch: Optional[Union[str, dict]] = None,
                 in_channels: int = 3,
                 conv_cfg: Optional[ConfigType] = None,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 zero_init_residual: bool = False,
                 multiscale_output: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[ConfigType, List[ConfigType]]] = None,
                 *,
                 extra: Optional[dict] = None,
                 fusion_mode: str = 'official',
                 fuse_order: Optional[str] = None,
                 new_branch: Optional[str] = None,
                 upsample_mode: str = 'bilinear',
                 align_corners: Optional[bool] = False,
                 fuse_resize: str = 'two_step',
                 channels_last: bool = False):
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('pretrained and init_cfg are both set; use init_cfg only')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        super().__init__(init_cfg)

        if arch is not None and extra is not None:
            given = 'an extra dict' if isinstance(arch, dict) else repr(arch)
            raise ValueError(f'arch={given} and extra are both given; give one of them')
        if isinstance(arch, dict):  # mmseg/mmdet order: HRNet(extra, ...)
            arch, extra = None, arch
        if extra is not None:
            stages = extra_to_stages(extra)
        else:
            arch = 'w48' if arch is None else arch
            if not isinstance(arch, str):
                raise ValueError(f'arch={arch!r} is not supported; allowed values: a preset name '
                                 f'({", ".join(repr(a) for a in ARCH_PRESETS)}) or an mmseg-style '
                                 f'extra dict')
            check_choice('arch', arch, tuple(ARCH_PRESETS))
            stages = ARCH_PRESETS[arch].stages()
        self.fusion = FusionSettings.from_mode(
            fusion_mode, fuse_order, new_branch, upsample_mode=upsample_mode,
            align_corners=align_corners, fuse_resize=fuse_resize)
        if isinstance(frozen_stages, bool):
            # mmdet's HRNet has no frozen_stages: its 7th positional argument is
            # zero_init_residual. A bool here is such a call; True would freeze stage 1.
            raise ValueError(f'frozen_stages={frozen_stages!r} must be an int, not a bool; '
                             f'allowed values: -1, 0, 1, 2, 3, 4 (mmdet\'s HRNet takes '
                             f'zero_init_residual in this position: pass it by keyword)')
        check_choice('frozen_stages', frozen_stages, tuple(range(-1, 5)))
        check_int('in_channels', in_channels)
        check_bool('channels_last', channels_last)

        self.arch = arch
        self.stage_specs = stages
        self.fusion_mode = fusion_mode
        self.multiscale_output = multiscale_output
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.channels_last = channels_last

        # Stem: two stride-2 3x3 convs to 1/4. build_norm_layer's postfix gives the names
        # bn1/bn2 (gn1/gn2 for GN) of the published checkpoints.
        self.conv1 = build_conv_layer(conv_cfg, in_channels, STEM_CHANNELS, 3, stride=2,
                                      padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, STEM_CHANNELS, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(conv_cfg, STEM_CHANNELS, STEM_CHANNELS, 3, stride=2,
                                      padding=1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, STEM_CHANNELS, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.relu = nn.ReLU(inplace=True)

        s1 = stages[0]
        self.layer1 = make_blocks(s1.block, STEM_CHANNELS, s1.num_channels[0],
                                  s1.num_blocks[0], conv_cfg, norm_cfg)
        channels = [s1.num_channels[0] * BLOCKS[s1.block].expansion]
        for s in (2, 3, 4):
            spec = stages[s - 1]
            target = [c * BLOCKS[spec.block].expansion for c in spec.num_channels]
            # The paper's new stream of stage s comes out of stage s-1's last fusion (then
            # `channels` already lists it); stage 1 has no fusion, so transition1 always makes
            # stage 2's second stream.
            self.add_module(f'transition{s - 1}',
                            self._make_transition(channels, target, conv_cfg, norm_cfg))
            next_spec = stages[s] if s < 4 else None
            new_channels = None
            if next_spec is not None and self.fusion.new_branch == 'from_all':
                new_channels = next_spec.num_channels[-1] * BLOCKS[next_spec.block].expansion
            stage, channels = self._make_stage(spec, target, new_channels,
                                               multiscale_output or s < 4, conv_cfg, norm_cfg)
            self.add_module(f'stage{s}', stage)
        self._out_channels = tuple(channels)
        self._freeze_stages()
        if channels_last:
            # In place: weight init and checkpoint loading write into these tensors (copy_),
            # so they keep the layout; so do .to(device) and the optimizer's state.
            self.to(memory_format=torch.channels_last)

    # The fusion settings, read-only, under the names of the constructor's arguments.
    fuse_order = property(lambda self: self.fusion.fuse_order)
    new_branch = property(lambda self: self.fusion.new_branch)
    upsample_mode = property(lambda self: self.fusion.upsample_mode)
    align_corners = property(lambda self: self.fusion.align_corners)
    fuse_resize = property(lambda self: self.fusion.fuse_resize)

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    @property
    def out_specs(self) -> Tuple[FeatureSpec, ...]:
        """Channels and stride of every tensor ``forward`` returns, highest resolution first."""
        return tuple(FeatureSpec(c, 4 * 2**b) for b, c in enumerate(self._out_channels))

    def _make_transition(self, pre: List[int], cur: List[int], conv_cfg: Optional[ConfigType],
                         norm_cfg: ConfigType) -> nn.ModuleList:
        """Entry ``b`` for each stream that existed before the previous fusion: None (identity)
        or a 3x3 conv-norm-ReLU when its width changes. Then, unless the previous fusion made
        the new stream already (``len(pre) == len(cur)``), a stride-2 3x3 conv-norm-ReLU from
        the lowest stream. No placeholder is kept for a fused new stream, so an official
        checkpoint's ``transition{s}.{new}`` weights are reported as unexpected, not skipped."""
        layers: List[Optional[nn.Module]] = [
            None if p == c else _conv_norm(p, c, 3, 1, conv_cfg, norm_cfg, relu=True)
            for p, c in zip(pre, cur[:-1])
        ]
        if len(pre) < len(cur):
            layers.append(nn.Sequential(
                _conv_norm(pre[-1], cur[-1], 3, 2, conv_cfg, norm_cfg, relu=True)))
        return nn.ModuleList(layers)

    def _make_stage(self, spec: StageSpec, in_channels: List[int], new_channels: Optional[int],
                    multiscale_output: bool, conv_cfg: Optional[ConfigType],
                    norm_cfg: ConfigType) -> Tuple[Sequential, List[int]]:
        """HR modules of one stage; only the last may add a new stream or keep stream 0 only.
        Returns the stage and the channels of its outputs."""
        modules = []
        channels = list(in_channels)
        for m in range(spec.num_modules):
            out = [c * BLOCKS[spec.block].expansion for c in spec.num_channels]
            if m == spec.num_modules - 1:
                if new_channels is not None:
                    out = out + [new_channels]
                elif not multiscale_output:
                    out = out[:1]
            module = HRModule(spec.block, spec.num_blocks, channels, spec.num_channels, out,
                              self.fusion, self.with_cp, conv_cfg, norm_cfg)
            modules.append(module)
            channels = out
        # The new stream is not an output of this stage; the next transition picks it up.
        return Sequential(*modules), channels

    def _freeze_groups(self) -> List[List[nn.Module]]:
        """Modules frozen together by ``frozen_stages``: index 0 the stem, k the k-th stage."""
        groups = [[self.conv1, self.norm1, self.conv2, self.norm2], [self.layer1, self.transition1]]
        groups += [[getattr(self, f'stage{s}'), getattr(self, f'transition{s}')] for s in (2, 3)]
        groups.append([self.stage4])
        return groups

    def _freeze_stages(self) -> None:
        for group in self._freeze_groups()[:self.frozen_stages + 1]:
            freeze(group)

    def residual_blocks(self) -> Iterator[Union[BasicBlock, Bottleneck]]:
        """Every residual block (``layer1`` and all branches)."""
        return (m for m in self.modules() if isinstance(m, (BasicBlock, Bottleneck)))

    def init_weights(self) -> None:
        first_call = not self._is_init
        super().init_weights()
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        loads = any(c and c.get('type') == 'Pretrained' for c in cfgs)
        if first_call and self.zero_init_residual and not loads:
            for block in self.residual_blocks():
                constant_init(block.norm3 if isinstance(block, Bottleneck) else block.norm2, 0)

    def forward(self, x: Tensor) -> List[Tensor]:
        """Args: x: ``(N, in_channels, H, W)``. Returns: list of ``(N, C_b, H_b, W_b)``, one
        per ``out_specs`` entry (in channels_last layout with ``channels_last=True``)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.relu(self.norm2(self.conv2(x)))
        ys = [run_blocks(self.layer1, x, self.with_cp)]
        for s in (2, 3, 4):
            transition = getattr(self, f'transition{s - 1}')
            xs = [y if t is None else t(y) for t, y in zip(transition, ys)]
            if len(transition) > len(ys):  # the new stream, from the lowest one
                xs.append(transition[-1](ys[-1]))
            else:  # paper's new branch: the previous fusion made it
                xs.append(ys[-1])
            ys = getattr(self, f'stage{s}')(xs)
        return ys

    def train(self, mode: bool = True) -> 'HRNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            keep_norm_eval(self)
        return self
