"""mmseg_hrplus.benchmark.deploy_paths: names are checked, every path computes the reference's
logits function from the same inputs, and a path the CPU cannot run says why."""
import pytest
import torch

from mmseg_hrplus.benchmark.deploy_paths import (PATH_NAMES, PathContext, PathNotRunnable,
                                                 build_path, build_paths, check_path_names)
from mmseg_hrplus.utils.cpu_info import cpu_flags, has_native_bf16
from tests.helpers.tiny_models import calibrated_tiny_hrnet_fcn, relative_error

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]


def test_path_names_are_checked():
    assert check_path_names(['pytorch-f32', 'openvino-f32']) == ['pytorch-f32', 'openvino-f32']
    with pytest.raises(ValueError, match="paths='fp16' is not supported; allowed values: "
                                         + ', '.join(map(repr, PATH_NAMES))):
        check_path_names(['pytorch-f32', 'fp16'])
    with pytest.raises(ValueError, match="paths must start with 'pytorch-f32'"):
        check_path_names(['openvino-f32', 'pytorch-f32'])
    with pytest.raises(ValueError, match='paths names a path twice'):
        check_path_names(['pytorch-f32', 'openvino-f32', 'openvino-f32'])
    with pytest.raises(ValueError, match="path='x' is not supported"):
        build_path('x', None)


def test_every_f32_path_gives_the_model_logits(tmp_path):
    model = calibrated_tiny_hrnet_fcn(tmp_path)
    inputs = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
    ctx = PathContext(model, str(tmp_path), threads=1)
    names = ['pytorch-f32', 'optimized-f32', 'onnxruntime-f32', 'openvino-f32']
    built, not_run = build_paths(names, ctx)
    assert list(built) == names and not_run == {}
    assert torch.equal(built['pytorch-f32'].logits(inputs), expected)
    for name in names[1:]:
        got = built[name].logits(inputs)
        assert got.shape == expected.shape == (2, 5, 16, 24) and got.dtype == torch.float32
        assert relative_error(got, expected) < 1e-5, name
    assert built['openvino-f32'].properties['precision'] == 'f32'
    assert (tmp_path / 'model.onnx').is_file()  # exported once, for both runtimes


def test_int8_needs_calibration_images(tmp_path):
    ctx = PathContext(calibrated_tiny_hrnet_fcn(tmp_path), str(tmp_path), threads=1)
    with pytest.raises(ValueError, match='openvino-int8 needs calibration_images'):
        build_path('openvino-int8', ctx)


@pytest.mark.skipif(has_native_bf16(cpu_flags()), reason='this CPU runs bf16 natively')
def test_openvino_bf16_is_not_runnable_without_native_bf16(tmp_path):
    ctx = PathContext(calibrated_tiny_hrnet_fcn(tmp_path), str(tmp_path), threads=1)
    with pytest.raises(PathNotRunnable, match="precision='bf16' needs a CPU with native bf16"):
        build_path('openvino-bf16', ctx)
