"""mmseg_hrplus.deploy.bf16: refused without native bf16 (this AVX2 CI machine has none), allowed
on given AVX512_BF16/AMX flags, and the emulated path computes the f32 model's logits within
the bf16 bound (tests/helpers/float_bounds.py, BF16_DEEP) with its convs really in bf16."""
import pytest
import torch

from mmseg_hrplus.deploy.bf16 import bf16_inference, check_bf16_cpu
from mmseg_hrplus.utils.cpu_info import cpu_flags, cpu_info, has_native_bf16
from tests.helpers.float_bounds import BF16_DEEP, assert_close_relative
from tests.tools.test_export_onnx import HRNET_FCN, calibrated, write_config
from tests.tools.test_export_onnx import export_onnx as export_onnx_tool

pytestmark = pytest.mark.torch21
NATIVE = has_native_bf16(cpu_flags())


def test_native_bf16_flags_are_accepted():
    assert check_bf16_cpu({'avx512f', 'avx512_bf16'}) == 'native'
    assert check_bf16_cpu({'avx2', 'amx_tile', 'amx_bf16'}) == 'native'
    assert check_bf16_cpu({'avx2', 'avx512f'}, emulate=True) == 'emulated'


def test_refusal_names_precision_flags_and_isa():
    message = (r"precision='bf16' needs a CPU with native bf16 \(flags avx512_bf16 or "
               r"amx_bf16\); this CPU \(AVX-512\) has neither; allowed values here: 'f32', or "
               r"bf16 with emulate=True \(slow: for measuring accuracy only\)")
    with pytest.raises(ValueError, match=message):
        check_bf16_cpu({'avx2', 'avx512f', 'avx512_vnni'})
    with pytest.raises(ValueError, match=r'emulate must be True or False, got 1'):
        check_bf16_cpu({'avx512_bf16'}, emulate=1)


@pytest.mark.skipif(NATIVE, reason='this CPU has native bf16')
def test_this_cpu_is_refused_before_copying():
    isa = cpu_info()['isa']
    with pytest.raises(ValueError, match=rf'this CPU \({isa}\) has neither'):
        bf16_inference(torch.nn.Conv2d(1, 1, 1))


def test_emulated_bf16_logits_within_the_bf16_bound(tmp_path):
    segmentor = calibrated(export_onnx_tool.build_segmentor(write_config(tmp_path, HRNET_FCN)))
    bf16 = bf16_inference(segmentor, compile=False, emulate=True)
    assert bf16 is not segmentor
    conv_dtypes = set()
    for module in bf16.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, out: conv_dtypes.add(out.dtype))
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = segmentor(x, mode='tensor')
        got = bf16(x, mode='tensor')
    assert conv_dtypes == {torch.bfloat16}
    assert got.dtype == torch.float32 and got.shape == expected.shape == (1, 5, 16, 24)
    assert 1.0 < expected.abs().max() < 100.0  # calibrated: realistic logits
    # measured 0.048 of the largest logit (19% of the bound); the float32 model is untouched
    assert_close_relative(got, expected, BF16_DEEP, 'emulated bf16 vs f32 logits')
    assert next(segmentor.parameters()).requires_grad
    assert not any(p.requires_grad for p in bf16.parameters())
    with torch.no_grad():
        assert segmentor(x, mode='tensor').dtype == torch.float32
