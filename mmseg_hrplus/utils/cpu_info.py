"""Which CPU a measurement ran on: model name, vector ISA level and torch's oneDNN version.

Speed-ups of CPU rewrites depend on the core: our Winograd F(4x4, 3x3) beats oneDNN's direct
conv on AVX2 cores and loses on AVX-512 ones, so benchmark reports carry this record.
"""
import os
import platform
import re
from pathlib import Path
from typing import Dict, Optional, Set

import torch

#: ISA levels from most to least capable, each with the /proc/cpuinfo flags that make it.
_ISA_FLAGS = (('AMX', {'amx_tile'}), ('AVX-512', {'avx512f'}), ('AVX2', {'avx2'}),
              ('AVX', {'avx'}))


def parse_cpuinfo(text: str) -> Dict[str, object]:
    """``model`` (first 'model name') and ``flags`` (set) from /proc/cpuinfo text."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key = key.strip()
        if key == 'model name' and model is None:
            model = value.strip()
        elif key in ('flags', 'Features') and not flags:
            flags = set(value.split())
    return dict(model=model, flags=flags)


def isa_level(flags: Set[str]) -> Optional[str]:
    """'AMX', 'AVX-512', 'AVX2', 'AVX' or None: the highest level whose flags are all there."""
    for name, needed in _ISA_FLAGS:
        if needed <= flags:
            return name
    return None


#: /proc/cpuinfo flags of native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles): where
#: OpenVINO's CPU plugin runs bf16, and silently picks it unless told otherwise.
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_flags(cpuinfo_path: str = '/proc/cpuinfo') -> Set[str]:
    """The CPU's feature flags from ``cpuinfo_path`` (empty if it cannot be read)."""
    try:
        return parse_cpuinfo(Path(cpuinfo_path).read_text())['flags']
    except OSError:
        return set()


def has_native_bf16(flags: Set[str]) -> bool:
    """Whether ``flags`` include one of :data:`BF16_FLAGS`."""
    return any(flag in flags for flag in BF16_FLAGS)


def onednn_version(config: str) -> Optional[str]:
    """oneDNN's version from ``torch.__config__.show()`` ('Intel(R) MKL-DNN v3.12.0 ...' or
    'oneDNN v...'), None if torch was built without it."""
    match = re.search(r'(?:MKL-DNN|oneDNN)\s+v(\d+(?:\.\d+)*)', config)
    return match.group(1) if match else None


def cpu_info(cpuinfo_path: str = '/proc/cpuinfo') -> Dict[str, object]:
    """``model``, ``isa`` (from the CPU flags), ``torch_cpu_capability`` (the kernels torch
    dispatches to: 'AVX2', 'AVX512', ...), ``onednn`` version, ``mkldnn_enabled``, ``cores``
    (logical CPUs), ``threads`` (torch's intra-op threads) and a one-line ``summary``."""
    try:
        parsed = parse_cpuinfo(Path(cpuinfo_path).read_text())
    except OSError:
        parsed = dict(model=None, flags=set())
    model = parsed['model'] or platform.processor() or platform.machine()
    capability = torch.backends.cpu.get_cpu_capability()
    info = dict(model=model, isa=isa_level(parsed['flags']) or capability,
                torch_cpu_capability=capability,
                onednn=onednn_version(torch.__config__.show()),
                mkldnn_enabled=bool(torch.backends.mkldnn.is_available()
                                    and torch.backends.mkldnn.enabled),
                cores=os.cpu_count(), threads=torch.get_num_threads())
    info['summary'] = (f'{info["model"]}, {info["isa"]} (torch kernels {capability}), '
                       f'oneDNN {info["onednn"] or "absent"}, {info["cores"]} CPUs, '
                       f'{info["threads"]} torch threads')
    return info
