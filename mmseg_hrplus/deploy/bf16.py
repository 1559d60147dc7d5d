"""bf16 inference of a segmentor in PyTorch: its network under CPU autocast, optionally
compiled by inductor.

bfloat16 keeps float32's exponent range and 8 significant bits (7 stored), so each rounding
errs by up to 2**-9 relative; a deep network's logits differ from float32 by a few 1e-3 of
their scale, a few labels flip at near-ties. It is fast only where the CPU multiplies bf16
natively (AVX512_BF16 dot products or AMX tiles, :data:`mmseg_hrplus.utils.cpu_info.BF16_FLAGS`);
elsewhere oneDNN converts to float32 around every kernel and it is slower than float32, so
:func:`check_bf16_cpu` refuses it there unless ``emulate=True``, which gives the same numbers
slowly: for measuring the accuracy of bf16 on a machine without it, never for speed (say so in
any report).

What :func:`bf16_inference` runs in bf16 (measured with forward hooks on HRNet + FCNHead,
torch 2.13 and 2.1): ``torch.autocast('cpu', dtype=torch.bfloat16)`` casts the inputs and
weights of convolutions and matmuls/linear layers to bf16 (oneDNN accumulates their sums in
float32) and their outputs are bf16. Autocast does not cast BatchNorm, ReLU, additions or
``F.interpolate``; they run in the dtype of their input, which after a conv is bf16, so
HRNet's fusions (resize, add) and the BN that is not folded into a conv also run and round in
bf16. What stays float32: the data preprocessor's normalisation (before the network), the
decode head's logits (cast back to float32 as they leave the head), their resize to the image
and everything after (``predict_by_feat``, ``postprocess_result``, the argmax), and the ops
autocast lists as float32 (losses, softmax-like reductions; not used by these heads'
forward).
"""
import copy
import functools
from typing import Callable, Optional, Set

import torch
import torch.nn as nn

from ..utils.cpu_info import BF16_FLAGS, cpu_flags, has_native_bf16, isa_level
from ..utils.validation import check_bool
from .inductor import compile_for_inference, decode_heads


def bf16_refusal(flags: Set[str]) -> Optional[str]:
    """None where ``flags`` include native bf16, else the start of the refusal message:
    ``"precision='bf16' needs a CPU with native bf16 (flags avx512_bf16 or amx_bf16); this
    CPU (AVX2) has neither"`` (shared by the OpenVINO and the PyTorch paths)."""
    if has_native_bf16(flags):
        return None
    isa = isa_level(flags) or torch.backends.cpu.get_cpu_capability()
    return (f"precision='bf16' needs a CPU with native bf16 (flags {' or '.join(BF16_FLAGS)}); "
            f'this CPU ({isa}) has neither')


def check_bf16_cpu(flags: Optional[Set[str]] = None, emulate: bool = False) -> str:
    """Whether bf16 runs natively on a CPU with ``flags`` (default this machine's).

    Returns:
        'native', or 'emulated' where the CPU has no native bf16 and ``emulate`` is True.

    Raises:
        ValueError: no native bf16 and ``emulate`` False: names ``precision``, the flags
            needed, the CPU's ISA, and the way out (``emulate=True``, accuracy only).
    """
    check_bool('emulate', emulate)
    refusal = bf16_refusal(cpu_flags() if flags is None else flags)
    if refusal is None:
        return 'native'
    if emulate:
        return 'emulated'
    raise ValueError(f"{refusal}; allowed values here: 'f32', or bf16 with emulate=True "
                     '(slow: for measuring accuracy only)')


def _under_autocast(forward: Callable, to_float32: bool) -> Callable:
    """``forward`` run under bf16 CPU autocast, its tensor output cast back to float32 when
    ``to_float32`` (a list or tuple of tensors is cast element by element)."""

    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        if not to_float32:
            return out
        if isinstance(out, (list, tuple)):
            return type(out)(o.float() if isinstance(o, torch.Tensor) else o for o in out)
        return out.float()

    return run


def bf16_inference(model: nn.Module, compile: bool = True, emulate: bool = False) -> nn.Module:
    """An inference copy of ``model`` whose network runs in bf16 (see the module notes).

    Args:
        model: an mmseg segmentor (``EncoderDecoder``, on the CPU; its backbone, neck and
            decode heads run under autocast, the heads return float32 logits), or any module (its
            whole forward runs under autocast and returns float32).
        compile: compile the backbone and the decode heads with inductor
            (:func:`~mmseg_hrplus.deploy.inductor.compile_for_inference`, ``freezing``: the
            weights become bf16 constants); the first call per input size compiles.
        emulate: allow a CPU without native bf16 (slow; accuracy measurement only).

    Returns:
        A deep copy in eval mode, ``requires_grad=False``; ``model`` is unchanged.

    Raises:
        ValueError: no native bf16 on this CPU and ``emulate`` False (:func:`check_bf16_cpu`),
            or a ``compile`` that is not a bool; before anything is copied.
    """
    check_bf16_cpu(emulate=emulate)
    check_bool('compile', compile)
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        model.forward = _under_autocast(model.forward, to_float32=True)
    else:
        for part in (backbone, getattr(model, 'neck', None)):
            if part is not None:  # bf16 features, kept in bf16 for the heads
                part.forward = _under_autocast(part.forward, to_float32=False)
        for head in decode_heads(model):
            head.forward = _under_autocast(head.forward, to_float32=True)
    if compile:
        compile_for_inference(model)
    return model
