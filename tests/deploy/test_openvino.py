"""mmseg_hrplus.deploy.openvino: our ONNX export in OpenVINO, compiled with explicit properties.

OpenVINO f32 gives PyTorch's logits within the DEEP bound (another kernel library summing in
another order, tests/helpers/float_bounds.py) for a tiny HRNet+FCN and a tiny BiSeNetV2+BGA
(the models of tests/tools/test_export_onnx.py, BN calibrated), at the export size and at sizes
that are not multiples of 32; the precision read back is f32; bf16 is refused before compiling
where the CPU has no native bf16, and bad arguments name themselves and the allowed values.
"""
import openvino as ov  # noqa: F401  (a CI dependency via requirements/openvino.txt: never skipped)
import pytest
import torch

from mmseg_hrplus.deploy import openvino as ovd
from mmseg_hrplus.deploy.onnx_export import export_onnx
from mmseg_hrplus.utils.cpu_info import cpu_flags, has_native_bf16
from tests.helpers.float_bounds import DEEP, check_relative
from tests.tools.test_export_onnx import BISENETV2_BGA, HRNET_FCN, calibrated, write_config
from tests.tools.test_export_onnx import export_onnx as export_onnx_tool

pytestmark = pytest.mark.torch21


def _tiny(tmp_path, model):
    return calibrated(export_onnx_tool.build_segmentor(write_config(tmp_path, model)))


@pytest.mark.parametrize('model', [HRNET_FCN, BISENETV2_BGA], ids=['hrnet_fcn', 'bisenetv2_bga'])
def test_openvino_f32_matches_pytorch(tmp_path, model):
    segmentor = _tiny(tmp_path, model)
    onnx_path = export_onnx(segmentor, str(tmp_path / 'tiny.onnx'), (64, 128))
    xml = tmp_path / 'tiny.xml'
    ovd.convert_onnx(onnx_path, xml)
    assert xml.is_file() and xml.with_suffix('.bin').stat().st_size > 0
    report = ovd.verify_openvino(segmentor, str(xml), [(64, 128), (72, 100), (97, 61)],
                                 threads=1)
    for r in report:
        assert 1.0 < r['max_abs_logit'] < 100.0, r  # calibrated: realistic logits
        check_relative(r['max_abs_diff'], r['max_abs_logit'], DEEP,
                       f'OpenVINO f32 vs PyTorch at {r["shape"]}')
        assert r['properties']['precision'] == 'f32'
        assert (r['properties']['threads'], r['properties']['hint']) == (1, 'LATENCY')


def test_properties_are_read_back(tmp_path):
    segmentor = _tiny(tmp_path, HRNET_FCN)
    model = ovd.convert_onnx(export_onnx(segmentor, str(tmp_path / 'm.onnx'), (64, 64)))
    props = ovd.compiled_properties(ovd.compile_model(model, threads=2, hint='THROUGHPUT'))
    assert (props['precision'], props['threads'], props['hint']) == ('f32', 2, 'THROUGHPUT')
    assert props['isa'] and props['cpu']
    line = ovd.describe_properties(props)
    assert 'precision f32, 2 threads, hint THROUGHPUT' in line
    default = ovd.compiled_properties(ovd.compile_model(model))
    assert (default['precision'], default['threads'], default['hint']) == (
        'f32', torch.get_num_threads(), 'LATENCY')


def test_bf16_only_on_cpus_with_native_bf16(tmp_path):
    # the decision on given flags, both ways
    assert ovd.check_precision('bf16', {'avx512f', 'avx512_bf16'}) == 'bf16'
    assert ovd.check_precision('bf16', {'amx_bf16'}) == 'bf16'
    with pytest.raises(ValueError, match=r"precision='bf16' needs a CPU with native bf16 "
                                         r"\(flags avx512_bf16 or amx_bf16\).*allowed values "
                                         r"here: 'f32'"):
        ovd.check_precision('bf16', {'avx2', 'avx512f'})
    # and on this machine, through compile_model (refused before compiling)
    model = ovd.convert_onnx(export_onnx(_tiny(tmp_path, HRNET_FCN), str(tmp_path / 'm.onnx'),
                                         (64, 64)))
    if has_native_bf16(cpu_flags()):
        props = ovd.compiled_properties(ovd.compile_model(model, precision='bf16'))
        assert props['precision'] == 'bf16'
    else:
        with pytest.raises(ValueError, match=r"precision='bf16' needs a CPU with native bf16"):
            ovd.compile_model(model, precision='bf16')


@pytest.mark.parametrize('kwargs, message', [
    (dict(precision='fp16'), r"precision='fp16' is not supported; allowed values: 'f32', "
                             r"'bf16'"),
    (dict(hint='FAST'), r"hint='FAST' is not supported; allowed values: 'LATENCY', "
                        r"'THROUGHPUT', 'CUMULATIVE_THROUGHPUT'"),
    (dict(threads=0), r'threads must be an int >= 1, got 0'),
    (dict(device='GPU'), r"device='GPU' is not supported; allowed values: 'CPU'"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ovd.compile_model('never-read.xml', **kwargs)


def test_xml_path_must_end_in_xml(tmp_path):
    onnx_path = export_onnx(_tiny(tmp_path, HRNET_FCN), str(tmp_path / 'm.onnx'), (64, 64))
    with pytest.raises(ValueError, match=r"xml_path='.*m.ir' must end in '.xml'"):
        ovd.convert_onnx(onnx_path, tmp_path / 'm.ir')


def test_runner_returns_arrays_that_outlive_the_next_call(tmp_path):
    """A shared OpenVINO output is the request's memory, overwritten by the next inference
    (measured: share_outputs=True fails this test); the runner's arrays are copies."""
    import numpy as np
    model = ovd.convert_onnx(export_onnx(_tiny(tmp_path, HRNET_FCN), str(tmp_path / 'm.onnx'),
                                         (64, 64)))
    run = ovd.runner(ovd.compile_model(model, threads=1))
    generator = np.random.RandomState(0)
    first = run(generator.randn(1, 3, 64, 64).astype(np.float32))
    kept = first.copy()
    second = run(generator.randn(1, 3, 64, 64).astype(np.float32))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, kept)
