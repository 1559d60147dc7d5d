"""cpu_info: the CPU record of benchmark reports, parsed from /proc/cpuinfo and torch."""
import re

import torch

from mmseg_hrplus.utils.cpu_info import cpu_info, isa_level, onednn_version, parse_cpuinfo

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16
processor\t: 1
model name\t: other
flags\t\t: fpu
"""


def test_parse_cpuinfo_and_isa_level():
    parsed = parse_cpuinfo(CPUINFO)
    assert parsed['model'] == 'AMD EPYC 9654 96-Core Processor'
    assert 'avx512f' in parsed['flags'] and 'fpu' in parsed['flags']
    assert isa_level(parsed['flags']) == 'AVX-512'
    assert isa_level({'avx', 'avx2', 'fma'}) == 'AVX2'
    assert isa_level({'avx2', 'avx512f', 'amx_tile', 'amx_bf16'}) == 'AMX'
    assert isa_level({'sse2'}) is None
    assert parse_cpuinfo('') == dict(model=None, flags=set())


def test_onednn_version():
    assert onednn_version('  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa7)') == '3.12.0'
    assert onednn_version('  - oneDNN v3.5.3 (Git Hash x)') == '3.5.3'
    assert onednn_version('  - CPU capability usage: AVX2') is None


def test_cpu_info_of_this_machine(tmp_path):
    info = cpu_info()
    assert info['torch_cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    assert info['threads'] == torch.get_num_threads()
    assert info['isa'] in ('AMX', 'AVX-512', 'AVX2', 'AVX', info['torch_cpu_capability'])
    assert isinstance(info['model'], str) and info['model']
    if torch.backends.mkldnn.is_available():
        assert re.fullmatch(r'\d+(\.\d+)+', info['onednn'])
    assert info['model'] in info['summary'] and info['isa'] in info['summary']
    # without /proc/cpuinfo: platform's name, torch's capability as the ISA
    missing = cpu_info(str(tmp_path / 'absent'))
    assert missing['isa'] == missing['torch_cpu_capability'] and missing['model']
