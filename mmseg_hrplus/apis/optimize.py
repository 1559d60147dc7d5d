"""Exact inference-time rewrites of a built segmentor: BN folding, channels_last, and the
HRNetV2 head factorisation.

Everything here is **inference-only**: a folded BatchNorm no longer normalises with batch
statistics, so training the returned model would train a different network. The rewrites
change the outputs only by float rounding: the tests bound the difference by 9.6e-5 of the
largest logit (``tests/float_bounds.py``, DEEP) and measure about 1e-6; ``tools/benchmark.py``
measured a max abs difference of 8.0e-5 on HRNet-W48 logits at 1x3x512x1024.

* **BN folding**: an eval-mode BatchNorm ``y = (x - mean) / sqrt(var + eps) * gamma + beta``
  that directly follows a convolution is merged into it: ``W' = W * s`` (per output channel),
  ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``; the BN is replaced by
  ``nn.Identity``. "Directly follows" is read from the module structure, in the three forms
  OpenMMLab models use: consecutive children of an ``nn.Sequential`` (conv, BN), an mmcv
  ``ConvModule`` whose order starts ``('conv', 'norm', ...)``, and the ``conv{k}`` /
  ``norm{k}_name`` pairs of ResNet-style blocks and stems (mmseg's BasicBlock and Bottleneck,
  our HRNet and DilatedResNet stems), whose forward always applies ``norm{k}`` right after
  ``conv{k}``. A BN that follows anything else (e.g. BiSeNetV2's BN after global pooling) is
  left as it is.
* **channels_last**: 4-D parameters and the backbone input in NHWC order, which oneDNN (CPU)
  and cuDNN (tensor cores) run faster.
* **head factorisation** (mmseg ``FCNHead`` with ``input_transform='resize_concat'``, 1x1
  first conv, e.g. the HRNetV2 head): ``conv1x1(concat(resize(x_0), ..., resize(x_n)))`` equals
  ``sum_j resize(conv1x1_j(x_j))`` because a 1x1 conv mixes channels pixel by pixel and
  bilinear resizing is linear per channel with weights summing to one (so the bias is added
  once). The per-stream convs then run at each stream's own resolution.
* **torch.compile** (opt-in, ``compile=True``): the backbone and the decode head's forward
  are compiled by inductor with ``freezing`` (weights as constants: prepacked oneDNN weights,
  conv + bias + ReLU/add fused into one kernel). Same arithmetic up to float rounding; the
  first call per input size compiles (87 s to 161 s for HRNet-W48 on this busy 2-core CPU).
* **Winograd** (opt-in, ``winograd=True``): wide 3x3 stride-1 convs computed by Winograd's
  F(4x4, 3x3), 4x fewer multiply-adds (:mod:`mmseg_hrplus.models.layers.winograd`); the only
  rewrite here that does less arithmetic rather than less overhead, and it rounds more (tests
  bound it by 3.4e-4 of the largest logit, WINOGRAD_DEEP; W48 logits measured within 9.5e-5 of
  mmseg's instead of 8.0e-5). Off by default for that reason. With
  ``winograd_autotune`` (the default) each converted conv times direct against Winograd once
  per input shape on the CPU that runs it and keeps the faster (at the first call, or here when
  ``example_input`` is given), so switching it on never makes a conv slower than measured:
  oneDNN's direct conv beats our F(4x4) on AVX-512 cores where it loses on AVX2 ones.
"""
import copy
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmseg.models.decode_heads import FCNHead
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg_hrplus.models.layers import WinogradConv2d
from mmseg_hrplus.models.layers.winograd import DEFAULT_MIN_CHANNELS
from mmseg_hrplus.models.utils.resize_sum import add_resized

FACTORIZE_HEAD_CHOICES = (True, False, 'auto')
#: What ``factorize_head='auto'`` resolves to. The factorised head computes ~8x fewer
#: multiply-adds in its first conv (HRNetV2-W48: 2.1 vs 17 GMAC at 1x3x512x1024) but resizes
#: ``len(in_index) - 1`` maps of ``channels`` channels instead of the narrower inputs. With BN
#: folded and channels_last, ``tools/benchmark.py --factorize-head both`` measured it faster
#: on this project's 2-core AVX2 CPU (W48 whole model at 1x3x512x1024 and 1x3x128x256);
#: docs/STACK.md records the opposite for mmseg's head without channels_last.
AUTO_FACTORIZE_HEAD = True


def fold_bn_into_conv(conv: nn.Conv2d, bn: _BatchNorm) -> None:
    """Merge an eval-mode ``bn`` applied to ``conv``'s output into ``conv`` (in place).

    ``conv`` gets a bias if it had none. The arithmetic is done in float64, then cast back to
    the parameter dtype.

    Raises:
        ValueError: if ``bn`` normalises with batch statistics (``track_running_stats=False``)
            or its channels differ from ``conv.out_channels``.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f'cannot fold {type(bn).__name__} without running statistics '
                         f'(track_running_stats=False): it normalises with batch statistics')
    if bn.num_features != conv.out_channels:
        raise ValueError(f'cannot fold a BN of {bn.num_features} channels into a conv with '
                         f'out_channels={conv.out_channels}')
    weight = conv.weight
    dtype = weight.dtype
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        bias = (bias - bn.running_mean.double()) * scale
        if bn.bias is not None:
            bias = bias + bn.bias.double()
        shape = (-1, ) + (1, ) * (weight.dim() - 1)
        new_weight = (weight.double() * scale.reshape(shape)).to(dtype)
        # Keep the memory format of the weight (channels_last may already be set).
        weight.copy_(new_weight)
        if conv.bias is None:
            conv.bias = nn.Parameter(bias.to(dtype=dtype, device=weight.device),
                                     requires_grad=weight.requires_grad)
        else:
            conv.bias.copy_(bias.to(dtype))


def _is_foldable(conv: nn.Module, norm: nn.Module) -> bool:
    # ConvTranspose has its output channels on dim 1: not handled (not used by our models).
    # WinogradConv2d computes the same function of (weight, bias) as nn.Conv2d.
    return (isinstance(conv, nn.Conv2d)
            and type(conv).forward in (nn.Conv2d.forward, WinogradConv2d.forward)
            and isinstance(norm, _BatchNorm) and norm.track_running_stats
            and norm.running_var is not None)


def _conv_norm_pairs(root: nn.Module) -> Iterator[Tuple[nn.Module, nn.Module, str]]:
    """(parent, conv, name of the norm child in parent) for every conv -> BN adjacency."""
    for parent in root.modules():
        if isinstance(parent, nn.Sequential):
            children = list(parent.named_children())
            for (_, conv), (name, norm) in zip(children, children[1:]):
                if _is_foldable(conv, norm):
                    yield parent, conv, name
        # mmcv ConvModule: conv, then norm when the order says so.
        order = getattr(parent, 'order', None)
        norm_name = getattr(parent, 'norm_name', None)
        if (isinstance(order, tuple) and order[:2] == ('conv', 'norm') and norm_name
                and getattr(parent, 'with_norm', False)):
            conv, norm = getattr(parent, 'conv', None), getattr(parent, norm_name, None)
            if _is_foldable(conv, norm):
                yield parent, conv, norm_name
        # ResNet-style blocks and stems: conv{k} followed by the norm named by norm{k}_name.
        for k in range(1, 10):
            name = getattr(parent, f'norm{k}_name', None)
            if not isinstance(name, str):
                continue
            conv, norm = getattr(parent, f'conv{k}', None), getattr(parent, name, None)
            if _is_foldable(conv, norm):
                yield parent, conv, name


def fold_batchnorms(model: nn.Module) -> int:
    """Fold every eval-mode BN that directly follows a conv in ``model`` (see the module notes)
    into that conv and replace it by ``nn.Identity``. Returns the number folded."""
    pairs = list(_conv_norm_pairs(model))
    seen = set()
    for parent, conv, norm_name in pairs:
        norm = getattr(parent, norm_name)
        if id(norm) in seen or not isinstance(norm, _BatchNorm):
            continue
        seen.add(id(norm))
        fold_bn_into_conv(conv, norm)
        setattr(parent, norm_name, nn.Identity())
    return len(seen)


class ResizeSumConv1x1(nn.Module):
    """``sum_j resize(conv_j(x_j), size of x_0)`` for a list of streams: the factorised form of
    a 1x1 conv applied to the resized and concatenated streams.

    Args:
        conv: the 1x1 conv (stride 1, groups 1) over the concatenated channels.
        align_corners: of the bilinear resize (the head's ``align_corners``).
        in_channels: channels of each stream, in concatenation order. ``None``: read from the
            first input (mmseg's heads keep only the sum); the per-stream convs are made then.

    Shapes: input a list of ``(N, in_channels[j], H_j, W_j)``; output
    ``(N, conv.out_channels, H_0, W_0)``.
    """

    def __init__(self, conv: nn.Conv2d, align_corners: bool,
                 in_channels: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.conv: Optional[nn.Conv2d] = conv
        self.convs = nn.ModuleList()
        self.in_channels: Optional[Tuple[int, ...]] = None
        if in_channels is not None:
            self._split(in_channels)

    def _split(self, in_channels: Sequence[int]) -> None:
        conv = self.conv
        if sum(in_channels) != conv.in_channels:
            raise ValueError(f'in_channels={list(in_channels)} sum to {sum(in_channels)}, '
                             f'the conv has in_channels={conv.in_channels}')
        weights = torch.split(conv.weight.detach(), list(in_channels), dim=1)
        fmt = (torch.channels_last
               if conv.weight.is_contiguous(memory_format=torch.channels_last)
               and not conv.weight.is_contiguous() else torch.contiguous_format)
        for j, (c, w) in enumerate(zip(in_channels, weights)):
            part = nn.Conv2d(c, conv.out_channels, 1, bias=j == 0 and conv.bias is not None)
            part = part.to(device=w.device, dtype=w.dtype, memory_format=fmt)
            part.requires_grad_(conv.weight.requires_grad)
            with torch.no_grad():
                part.weight.copy_(w)
                if part.bias is not None:
                    part.bias.copy_(conv.bias)
            self.convs.append(part)
        self.in_channels = tuple(in_channels)
        self.conv = None

    def forward(self, xs: List[Tensor]) -> Tensor:
        channels = tuple(x.shape[1] for x in xs)
        if self.in_channels is None:
            self._split(channels)
        elif not torch.jit.is_tracing() and channels != self.in_channels:
            raise ValueError(f'ResizeSumConv1x1 was split for streams of {self.in_channels} '
                             f'channels, got {channels}')
        return add_resized(self.convs[0](xs[0]),
                           (conv(x) for conv, x in zip(self.convs[1:], xs[1:])),
                           self.align_corners)


class FactorizedFCNHead(FCNHead):
    """mmseg's ``FCNHead`` whose ``resize_concat`` inputs reach the first conv as a list: the
    first conv is a :class:`ResizeSumConv1x1`. Made by :func:`factorize_fcn_head` only."""

    def _transform_inputs(self, inputs: List[Tensor]) -> List[Tensor]:
        return [inputs[i] for i in self.in_index]


def can_factorize_head(head: nn.Module) -> bool:
    """True for an mmseg ``FCNHead`` (exactly that class) with ``input_transform=
    'resize_concat'``, at least one conv, a 1x1 stride-1 ungrouped first conv and
    ``concat_input=False``."""
    if type(head) is not FCNHead or head.input_transform != 'resize_concat':
        return False
    if head.num_convs < 1 or head.concat_input:
        return False
    conv = head.convs[0].conv
    return (type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.groups == 1 and conv.padding == (0, 0))


def factorize_fcn_head(head: FCNHead,
                       in_channels: Optional[Sequence[int]] = None) -> FactorizedFCNHead:
    """Turn ``head`` (see :func:`can_factorize_head`) into a :class:`FactorizedFCNHead`, in
    place; its outputs are unchanged up to float rounding. ``in_channels``: the channels of
    the selected streams, if known (else read at the first forward)."""
    if not can_factorize_head(head):
        raise ValueError(f'factorize_head needs an mmseg FCNHead with input_transform='
                         f'\'resize_concat\', a 1x1 first conv and concat_input=False, got '
                         f'{type(head).__name__} with input_transform='
                         f'{getattr(head, "input_transform", None)!r}')
    first = head.convs[0]
    first.conv = ResizeSumConv1x1(first.conv, head.align_corners, in_channels)
    head.__class__ = FactorizedFCNHead
    return head


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    x = args[0]
    if isinstance(x, Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), ) + tuple(args[1:])
    return args


def optimize_for_inference(model: nn.Module,
                           channels_last: bool = True,
                           fold_bn: bool = True,
                           factorize_head: Union[bool, str] = 'auto',
                           inplace: bool = False,
                           compile: bool = False,
                           winograd: bool = False,
                           winograd_min_channels: int = DEFAULT_MIN_CHANNELS,
                           winograd_tile: int = 4,
                           winograd_autotune: bool = True,
                           example_input: Union[Tensor, Sequence[int], None] = None
                           ) -> nn.Module:
    """An inference-only copy of a segmentor with exact speed rewrites (see the module notes).

    Works on any mmseg segmentor (``EncoderDecoder``) built from our backbones (HRNet,
    BiSeNetV2, DilatedResNet), mmseg's, and any mmseg or mmseg_hrplus head.

    Args:
        model: the built model; its eval-mode behaviour is what is preserved.
        channels_last: convert 4-D parameters to ``torch.channels_last`` and the backbone's
            input with a forward pre-hook.
        fold_bn: fold every BN that directly follows a conv into the conv.
        factorize_head: True, False or 'auto' (:data:`AUTO_FACTORIZE_HEAD`): factorise a
            ``resize_concat`` FCNHead (see :func:`can_factorize_head`; other heads are left
            unchanged).
        inplace: rewrite ``model`` itself instead of a deep copy.
        compile: compile the backbone and the decode heads' ``forward`` with inductor and
            ``freezing=True`` (see the module notes); the model then no longer deep-copies.
        winograd: compute every 3x3 stride-1 conv with at least ``winograd_min_channels``
            input and output channels by Winograd's F(``winograd_tile`` x ``winograd_tile``,
            3x3) (:mod:`mmseg_hrplus.models.layers.winograd`): fewer multiply-adds, more rounding
            (HRNet-W48 logits measured within 9.5e-5 of mmseg's instead of 8.0e-5). Applied
            after BN folding, by :meth:`WinogradConv2d.convert_winograd`.
        winograd_autotune: each Winograd conv times itself against the direct conv once per
            input shape and keeps the faster (decisions in
            :func:`mmseg_hrplus.models.layers.winograd_decisions`). False: always Winograd.
        example_input: a tensor (or its shape, filled with random numbers) the model is run on
            once here, in ``torch.no_grad``, so that the autotune measurements happen now and
            not at the first call (``model(x, mode='tensor')`` for mmengine models).

    Returns:
        The rewritten model (a new object unless ``inplace``), in eval mode, with
        ``requires_grad=False`` on every parameter. Do not train it.
    """
    if factorize_head not in FACTORIZE_HEAD_CHOICES or not isinstance(factorize_head,
                                                                        (bool, str)):
        raise ValueError(f'factorize_head={factorize_head!r} is not supported; allowed values: '
                         f'True, False, \'auto\'')
    if factorize_head == 'auto':
        factorize_head = AUTO_FACTORIZE_HEAD
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorms(model)
    if factorize_head:
        specs = getattr(getattr(model, 'backbone', None), 'out_specs', None)
        for head in _decode_heads(model):
            if can_factorize_head(head):
                channels = None
                if specs is not None and getattr(model, 'neck', None) is None:
                    channels = [specs[i].channels for i in head.in_index]
                factorize_fcn_head(head, channels)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        backbone: Optional[nn.Module] = getattr(model, 'backbone', None)
        (backbone or model).register_forward_pre_hook(_to_channels_last)
    if winograd:
        model = WinogradConv2d.convert_winograd(model, winograd_min_channels, winograd_tile,
                                                winograd_autotune)
        if winograd_autotune and example_input is not None:
            _run_once(model, example_input)
    if compile:
        compile_for_inference(model)
    return model


def _run_once(model: nn.Module, example_input: Union[Tensor, Sequence[int]]) -> None:
    from mmengine.model import BaseModel
    if not isinstance(example_input, Tensor):
        example_input = torch.randn(*example_input)
    param = next(model.parameters(), None)
    if param is not None:
        example_input = example_input.to(param.device)
    with torch.no_grad():
        if isinstance(model, BaseModel):
            model(example_input, mode='tensor')
        else:
            model(example_input)


def compile_for_inference(model: nn.Module) -> None:
    """Compile (inductor, ``freezing=True``) the backbone and every decode head's ``forward``
    of an eval-mode, gradient-free ``model``, in place. mmseg calls ``decode_head.forward``
    directly (not ``__call__``), hence the bound-method replacement for heads."""
    options = {'freezing': True}
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        model.compile(options=options)
        return
    backbone.compile(options=options)
    for head in _decode_heads(model):
        head.forward = torch.compile(head.forward, options=options)


def _decode_heads(model: nn.Module) -> List[nn.Module]:
    heads = getattr(model, 'decode_head', None)
    if heads is None:
        return []
    return list(heads) if isinstance(heads, nn.ModuleList) else [heads]
