"""``WinogradConv2d``: an ``nn.Conv2d`` computed by Winograd where that pays off (see the package
notes in :mod:`mmseg_hrplus.models.layers.winograd`), and the one predicate of which convs
qualify."""
from functools import partial
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_hrplus.models.utils.memory_format import is_channels_last
from mmseg_hrplus.registry import MODELS
from mmseg_hrplus.utils.validation import check_int
from .autotune import ConvShape, WinogradDecision, _decision
from .functional import (_input_tiles, _sandwich_output, _untile, check_tile, filter_transform,
                         winograd_conv3x3)

#: Narrowest conv (input and output channels) computed by Winograd unless told otherwise. The
#: transforms cost memory traffic proportional to the channels while the products cost channels
#: squared, so narrow convs lose; where the crossover lies depends on the core (docs/benchmarks.md
#: records the measurement behind 96; ``autotune`` measures it on the machine at hand).
DEFAULT_MIN_CHANNELS = 96


def is_winograd_eligible(conv: nn.Module, min_channels: int = 1) -> bool:
    """The one test of which convs Winograd computes: an ``nn.Conv2d`` (or subclass) with a
    3x3 kernel, stride 1, padding 1, dilation 1, one group, zero padding and at least
    ``min_channels`` input and output channels."""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == 'zeros'
            and conv.in_channels >= min_channels and conv.out_channels >= min_channels)


def _cpu_autocast_check() -> Callable[[], bool]:
    """The check for CPU autocast this torch offers, picked once: ``is_autocast_enabled('cpu')``
    where it takes a device type (recent releases), ``is_autocast_cpu_enabled`` before (torch
    2.1), so the forward pass does not probe the signature on every call."""
    try:
        torch.is_autocast_enabled('cpu')
    except TypeError:
        return torch.is_autocast_cpu_enabled
    return partial(torch.is_autocast_enabled, 'cpu')


#: Whether CPU autocast is on (see :func:`_cpu_autocast_check`).
_cpu_autocast_enabled = _cpu_autocast_check()


def _flat(t: Tensor) -> Tensor:
    """The elements of a dense tensor in memory order, as a 1-D view (no copy)."""
    if t.is_contiguous():
        return t.view(-1)
    return t.permute(0, 2, 3, 1).reshape(-1)  # channels_last weights: a view as well


@MODELS.register_module()
class WinogradConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes the convs :func:`is_winograd_eligible` accepts (with
    ``min_channels``) by Winograd F(tile x tile, 3x3), and any other conv as ``nn.Conv2d``
    does. Same parameters and state-dict keys as ``nn.Conv2d``, so checkpoints load either
    way; use it as ``conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d')`` of a backbone (mmcv's
    ``build_conv_layer``), or convert a built model with :meth:`convert_winograd`.

    Args:
        *args, **kwargs: those of ``nn.Conv2d``.
        tile: 4 (F(4x4, 3x3), 4x fewer multiplications) or 2 (F(2x2, 3x3), 2.25x fewer,
            less rounding).
        min_channels: narrower convs run as ``nn.Conv2d`` (Winograd's transforms cost more
            than they save there; see the module notes).
        autotune: time direct against Winograd once per conv shape (and per kind of call:
            inference, or forward + backward in training) and keep the faster (see the module
            notes); False: always Winograd.

    Only CPU tensors take the Winograd path: on CUDA the layer is ``nn.Conv2d`` (cuDNN picks
    its own algorithm, Winograd included), and so it is in a trace (an ONNX export has a plain
    Conv node), under autocast and for dtypes other than float32/float64. Without gradients
    (inference) the transformed filters are cached until the weight changes (also through
    ``weight.data``; see the module notes).
    """

    def __init__(self, *args, tile: int = 4, min_channels: int = DEFAULT_MIN_CHANNELS,
                 autotune: bool = False, **kwargs) -> None:
        check_tile(tile)
        check_int('min_channels', min_channels)
        super().__init__(*args, **kwargs)
        self.tile = tile
        self.min_channels = min_channels
        self.autotune = autotune
        self._cached: Optional[Tuple[tuple, Tensor]] = None
        self._probe: Optional[Tensor] = None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, tile: int = 4, min_channels: int = 1,
                  autotune: bool = False) -> 'WinogradConv2d':
        """A :class:`WinogradConv2d` sharing ``conv``'s parameters (not copies)."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                  conv.padding_mode, tile=tile, min_channels=min_channels, autotune=autotune,
                  device='meta')
        new.weight = conv.weight
        new.bias = conv.bias
        return new.train(conv.training)

    @classmethod
    def convert_winograd(cls, module: nn.Module, min_channels: int = DEFAULT_MIN_CHANNELS,
                         tile: int = 4, autotune: bool = False) -> nn.Module:
        """``module`` with every plain ``nn.Conv2d`` (exactly that class) that
        :func:`is_winograd_eligible` accepts with ``min_channels`` replaced by a
        :class:`WinogradConv2d` sharing its parameters; like
        ``nn.SyncBatchNorm.convert_sync_batchnorm``, children are replaced in place and the
        (possibly new) module is returned. Existing :class:`WinogradConv2d` layers keep their
        tile and ``min_channels`` and get ``autotune`` switched on if asked."""
        check_tile(tile)
        check_int('min_channels', min_channels)
        if isinstance(module, cls):
            module.autotune = module.autotune or autotune
            return module
        if type(module) is nn.Conv2d and is_winograd_eligible(module, min_channels):
            return cls.from_conv(module, tile, min_channels, autotune)
        for name, child in module.named_children():
            new = cls.convert_winograd(child, min_channels, tile, autotune)
            if new is not child:
                setattr(module, name, new)
        return module

    @property
    def uses_winograd(self) -> bool:
        """:func:`is_winograd_eligible` with this layer's ``min_channels``."""
        return is_winograd_eligible(self, self.min_channels)

    def forward(self, x: Tensor) -> Tensor:
        # On GPUs cuDNN already chooses among direct, FFT and Winograd algorithms itself. A
        # trace (ONNX export) records a plain Conv: the runtime picks its own algorithm, and
        # the tiling here depends on the input size, which a trace would freeze.
        if (not self.uses_winograd or x.device.type != 'cpu' or torch.jit.is_tracing()
                or x.dtype not in (torch.float32, torch.float64)
                or _cpu_autocast_enabled()):
            return super().forward(x)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects (N, {self.in_channels}, H, W) '
                             f'inputs, got {tuple(x.shape)}')
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            if self.autotune and self.decide_training(x).choice == 'direct':
                return super().forward(x)
            return winograd_conv3x3(x, self.weight, self.bias, self.tile)
        with torch.no_grad():
            if self.autotune and self.decide(x).choice == 'direct':
                return super().forward(x)
            return self._winograd_inference(x)

    def _winograd_inference(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        y = _sandwich_output(torch.bmm(_input_tiles(x, self.tile), self._filters()), self.tile)
        return _untile(y, n, h, w, self.tile, x, self.bias)

    def conv_shape(self, x: Tensor, gradients: str = '') -> ConvShape:
        n, _, h, w = x.shape
        return ConvShape(self.in_channels, self.out_channels, n, h, w, self.tile,
                         self.bias is not None, is_channels_last(x), str(x.dtype).split('.')[-1],
                         torch.get_num_threads(), gradients)

    @torch.no_grad()
    def decide(self, x: Tensor) -> WinogradDecision:
        """The autotune decision for ``x``'s conv shape: the cached one, or measured now on
        ``x`` (see the module notes)."""
        return _decision(self.conv_shape(x), lambda: {
            'winograd': lambda: self._winograd_inference(x),
            'direct': lambda: super(WinogradConv2d, self).forward(x)})

    def decide_training(self, x: Tensor) -> WinogradDecision:
        """The autotune decision for a call with gradients: forward plus backward of each path
        on a copy of ``x`` and of the parameters (nothing of the model's is touched; the
        output gradient is random)."""
        needs_x, needs_w = x.requires_grad, self.weight.requires_grad
        gradients = '+'.join(name for name, needed in (('input', needs_x), ('weight', needs_w))
                             if needed)

        def paths() -> Dict[str, Callable[[], object]]:
            xc = x.detach().clone().requires_grad_(needs_x)
            weight = self.weight.detach().clone().requires_grad_(needs_w)
            bias = None if self.bias is None else self.bias.detach().clone().requires_grad_(
                self.bias.requires_grad)
            inputs = [t for t in (xc, weight, bias) if t is not None and t.requires_grad]
            grad_y = torch.randn_like(F.conv2d(xc.detach(), weight.detach(), None, 1, 1))

            def step(conv: Callable[[], Tensor]) -> Callable[[], object]:
                return lambda: torch.autograd.grad(conv(), inputs, grad_y)

            return {'winograd': step(lambda: winograd_conv3x3(xc, weight, bias, self.tile)),
                    'direct': step(lambda: F.conv2d(xc, weight, bias, 1, 1))}

        with torch.enable_grad():
            return _decision(self.conv_shape(x, gradients), paths)

    def _checksum(self, weight: Tensor) -> float:
        """Dot product of the weight with a fixed random probe of its shape and strides."""
        if (self._probe is None or self._probe.shape != weight.shape
                or self._probe.stride() != weight.stride() or self._probe.dtype != weight.dtype):
            gen = torch.Generator().manual_seed(0x5EED)
            self._probe = torch.empty_like(weight).copy_(
                torch.rand(weight.shape, generator=gen, dtype=weight.dtype) + 0.5)
        return float(torch.vdot(_flat(weight), _flat(self._probe)))

    def _filters(self) -> Tensor:
        weight = self.weight.detach()
        key = (weight.data_ptr(), self.weight._version, weight.dtype, self._checksum(weight))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, filter_transform(weight, self.tile).contiguous())
        return self._cached[1]

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', tile={self.tile}, min_channels={self.min_channels}'
                f', autotune={self.autotune}')
