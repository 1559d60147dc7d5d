"""Exact inference-time rewrites of a built segmentor: BN folding, channels_last, and the
HRNetV2 head factorisation.

Everything here is **inference-only**: a folded BatchNorm no longer normalises with batch
statistics, so training the returned model would train a different network. The rewrites
change the outputs only by float rounding: on HRNet-W18-small + FCN, BiSeNetV2 + BGA and
DilatedResNet + ASPP the tests bound the difference by 9.6e-5 of the largest logit
(``tests/helpers/float_bounds.py``, DEEP). Measured differences, on larger models too, are in
docs/benchmarks.md.

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
  first conv, e.g. the HRNetV2 head): the head is replaced by a
  :class:`~mmseg_hrplus.models.decode_heads.ResizeSumFCNHead` with the same settings, loaded
  with the FCNHead's state dict (same keys). It computes
  ``conv1x1(concat(resize(x_0), ..., resize(x_n)))`` as ``sum_j resize(conv1x1_j(x_j))``,
  equal because a 1x1 conv mixes channels pixel by pixel and bilinear resizing is linear per
  channel with weights summing to one (so the bias is added once). The per-stream convs then
  run at each stream's own resolution. Alone, it changes the logits by at most 1.2e-5 of the
  largest (tests, SHALLOW), within the DEEP bound of all the rewrites. It computes ~8x fewer
  multiply-adds in the head's first conv but resizes ``len(in_index) - 1`` maps of ``channels``
  channels instead of the narrower inputs, so it is memory-bound: whether it is faster depends
  on the memory format and the machine (docs/benchmarks.md); ``factorize_head=False`` keeps the
  FCNHead.
* **torch.compile** (opt-in, ``compile=True``, :mod:`mmseg_hrplus.deploy.inductor`): the
  backbone and the decode head's forward are compiled by inductor with ``freezing`` (weights as
  constants: prepacked oneDNN weights, conv + bias + ReLU/add fused into one kernel). Same
  arithmetic up to float rounding; the first call per input size compiles, and a later
  process loads the compiled graphs from inductor's on-disk cache (see that module).
* **Winograd** (opt-in, ``winograd=True`` or ``winograd=dict(min_channels=..., tile=...,
  autotune=...)``): wide 3x3 stride-1 convs computed by Winograd's
  F(4x4, 3x3), 4x fewer multiply-adds (:mod:`mmseg_hrplus.models.layers.winograd`); the only
  rewrite here that does less arithmetic rather than less overhead, and it rounds more (tests
  bound it by 3.4e-4 of the largest logit, WINOGRAD_DEEP). Off by default for that reason.
  With ``autotune`` (the default of ``winograd=dict(...)``) each converted conv times direct
  against Winograd once per input shape on the CPU that runs it and keeps the faster (at the
  first call, or here when ``example_input`` is given), so switching it on never makes a conv
  slower than measured: which one wins depends on the core.
"""
import copy
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmseg.models.decode_heads import FCNHead
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg_hrplus.deploy.inductor import compile_for_inference
from mmseg_hrplus.models.decode_heads import ResizeSumFCNHead
from mmseg_hrplus.models.layers import WinogradConv2d
from mmseg_hrplus.models.layers.winograd import DEFAULT_MIN_CHANNELS, check_tile
from mmseg_hrplus.utils.validation import check_bool, check_choice, check_int

FACTORIZE_HEAD_CHOICES = (True, False, 'auto')
#: The keys of ``optimize_for_inference(winograd=dict(...))``: those of
#: :meth:`WinogradConv2d.convert_winograd`, with their defaults.
WINOGRAD_DEFAULTS = dict(min_channels=DEFAULT_MIN_CHANNELS, tile=4, autotune=True)


def winograd_settings(winograd: Union[bool, dict, None]) -> Optional[dict]:
    """The Winograd conversion ``optimize_for_inference(winograd=...)`` asks for: None for off
    (False or None), :data:`WINOGRAD_DEFAULTS` for True, else the given dict over the defaults.

    Raises:
        ValueError: a dict with keys other than :data:`WINOGRAD_DEFAULTS`', or another type.
    """
    if winograd is None or winograd is False:
        return None
    if winograd is True:
        return dict(WINOGRAD_DEFAULTS)
    if not isinstance(winograd, dict):
        raise ValueError(f'winograd={winograd!r} is not supported; allowed values: True, False, '
                         f'None or a dict with keys {", ".join(WINOGRAD_DEFAULTS)}')
    unknown = sorted(set(winograd) - set(WINOGRAD_DEFAULTS))
    if unknown:
        raise ValueError(f'winograd has unknown keys {unknown}; allowed keys: '
                         f'{", ".join(WINOGRAD_DEFAULTS)}')
    settings = {**WINOGRAD_DEFAULTS, **winograd}
    check_tile(settings['tile'])
    check_int('winograd.min_channels', settings['min_channels'])
    check_bool('winograd.autotune', settings['autotune'])
    return settings


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


def _stream_channels(model: nn.Module, head: FCNHead,
                     example_input: Union[Tensor, Sequence[int], None]
                     ) -> Optional[List[int]]:
    """Channels of the streams ``head`` reads: from the backbone's ``out_specs`` when there is
    no neck, else from one ``extract_feat`` of ``example_input``; None when neither is there."""
    specs = getattr(getattr(model, 'backbone', None), 'out_specs', None)
    if specs is not None and getattr(model, 'neck', None) is None:
        return [specs[i].channels for i in head.in_index]
    if example_input is None or not hasattr(model, 'extract_feat'):
        return None
    with torch.no_grad():
        feats = model.extract_feat(_example_tensor(model, example_input))
    return [feats[i].shape[1] for i in head.in_index]


def factorize_heads(model: nn.Module, required: bool = False,
                    example_input: Union[Tensor, Sequence[int], None] = None) -> int:
    """Replace every decode head of ``model`` that :meth:`ResizeSumFCNHead.can_replace` by its
    :meth:`ResizeSumFCNHead.from_fcn_head`, in place. Returns the number replaced.

    Args:
        required: raise when an eligible head's stream channels cannot be told (a backbone
            without ``out_specs`` or a neck, and no ``example_input``); else keep that head.
        example_input: see :func:`optimize_for_inference`.

    Raises:
        ValueError: see ``required``.
    """
    heads = getattr(model, 'decode_head', None)
    if heads is None:
        return 0
    indexed = list(enumerate(heads)) if isinstance(heads, nn.ModuleList) else [(None, heads)]
    replaced = 0
    for index, head in indexed:
        if not ResizeSumFCNHead.can_replace(head):
            continue
        channels = _stream_channels(model, head, example_input)
        if channels is None:
            if required:
                raise ValueError('factorize_head=True: the channels of the streams the '
                                 'FCNHead concatenates are unknown (the backbone has no '
                                 'out_specs, or there is a neck); pass example_input')
            continue
        new = ResizeSumFCNHead.from_fcn_head(head, channels)
        if index is None:
            model.decode_head = new
        else:
            heads[index] = new
        replaced += 1
    return replaced


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
                           winograd: Union[bool, dict, None] = None,
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
        factorize_head: replace a ``resize_concat`` FCNHead by a ``ResizeSumFCNHead``
            (:func:`factorize_heads`; other heads are left unchanged). The channels of its
            streams come from the backbone's ``out_specs`` (no neck) or one ``extract_feat`` of
            ``example_input``. 'auto': replace it where those channels are known, keep the
            FCNHead where they are not; True: replace it or raise; False: keep it.
        inplace: rewrite ``model`` itself instead of a deep copy.
        compile: compile the backbone and the decode heads' ``forward`` with inductor and
            ``freezing=True`` (see the module notes); the model then no longer deep-copies.
        winograd: None or False (the default): no Winograd. True, or a dict of
            :data:`WINOGRAD_DEFAULTS`' keys (OpenMMLab's ``*_cfg`` style, missing keys take the
            defaults): compute every 3x3 stride-1 conv with at least ``min_channels`` input and
            output channels by Winograd's F(``tile`` x ``tile``, 3x3)
            (:mod:`mmseg_hrplus.models.layers.winograd`): fewer multiply-adds, more rounding
            (bounded by 3.4e-4 of the largest logit in the tests instead of 9.6e-5). Applied
            after BN folding, by :meth:`WinogradConv2d.convert_winograd`. With ``autotune``
            (default True) each Winograd conv times itself against the direct conv once per
            input shape and keeps the faster (decisions in
            :func:`mmseg_hrplus.models.layers.winograd_decisions`); False: always Winograd.
        example_input: a tensor (or its shape, filled with random numbers) the model is run on
            once here, in ``torch.no_grad``, so that the autotune measurements happen now and
            not at the first call (``model(x, mode='tensor')`` for mmengine models); also tells
            the head factorisation its stream channels when the backbone cannot.

    Returns:
        The rewritten model (a new object unless ``inplace``), in eval mode, with
        ``requires_grad=False`` on every parameter. Do not train it.

    Raises:
        ValueError: a ``factorize_head`` outside :data:`FACTORIZE_HEAD_CHOICES`, a bad
            ``winograd`` (:func:`winograd_settings`), both before the model is copied; with
            ``factorize_head=True``, a head whose stream channels cannot be told (no
            ``out_specs`` on the backbone, or a neck, and no ``example_input``).
    """
    check_choice('factorize_head', factorize_head, FACTORIZE_HEAD_CHOICES)
    winograd = winograd_settings(winograd)
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if factorize_head:  # before folding: the new head loads the FCNHead's state dict
        factorize_heads(model, required=factorize_head is True, example_input=example_input)
    if fold_bn:
        fold_batchnorms(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        backbone: Optional[nn.Module] = getattr(model, 'backbone', None)
        (backbone or model).register_forward_pre_hook(_to_channels_last)
    if winograd is not None:
        model = WinogradConv2d.convert_winograd(model, **winograd)
        if winograd['autotune'] and example_input is not None:
            _run_once(model, example_input)
    if compile:
        compile_for_inference(model)
    return model


def _example_tensor(model: nn.Module, example_input: Union[Tensor, Sequence[int]]) -> Tensor:
    """``example_input``, or random numbers of that shape, on ``model``'s device."""
    if not isinstance(example_input, Tensor):
        example_input = torch.randn(*example_input)
    param = next(model.parameters(), None)
    return example_input if param is None else example_input.to(param.device)


def _run_once(model: nn.Module, example_input: Union[Tensor, Sequence[int]]) -> None:
    from mmengine.model import BaseModel
    example_input = _example_tensor(model, example_input)
    with torch.no_grad():
        if isinstance(model, BaseModel):
            model(example_input, mode='tensor')
        else:
            model(example_input)
