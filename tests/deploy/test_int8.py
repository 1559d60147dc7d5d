"""mmseg_hrplus.deploy.int8: NNCF post-training quantization of our OpenVINO export.

A tiny HRNet+FCN (the model of tests/tools/test_export_onnx.py, BN calibrated, random weights)
is quantized on 4 random inputs: every convolution then runs in int8 in OpenVINO's CPU plugin
(read back from the compiled model), and its labels agree with f32's on held-out inputs. The
bounds are measured, for a random network, where int8 errors are not averaged away by trained
structure: label agreement 0.75-0.92 over 12 held-out inputs (64x64 and 64x96; 5 classes: a
broken flow, e.g. inputs normalised twice or ranges from another model, agrees near chance,
~0.2), so at least 0.6; the largest logit difference 0.23-0.46 of the largest logit, so at
most 0.8. An f32 path
differs by 1e-4 (DEEP), so the test also sees that quantization changed the model. Accuracy on
trained models is measured by tools/analysis_tools/deploy_accuracy.py, not here.
"""
import numpy as np
import openvino as ov  # noqa: F401  (a CI dependency via requirements/openvino.txt)
import pytest
import torch
from mmengine.config import Config

from mmseg_hrplus.deploy import openvino as ovd
from mmseg_hrplus.deploy.int8 import calibration_arrays, quantize_openvino
from mmseg_hrplus.deploy.onnx_export import export_onnx
from tests.helpers.float_bounds import DEEP
from tests.tools.test_export_onnx import HRNET_FCN, calibrated, write_config
from tests.tools.test_export_onnx import export_onnx as export_onnx_tool

pytestmark = pytest.mark.torch21
MIN_LABEL_AGREEMENT = 0.6
MAX_RELATIVE_LOGIT_DIFF = 0.8


def _inputs(seed, count, shape=(1, 3, 64, 64)):
    generator = np.random.RandomState(seed)
    return [generator.randn(*shape).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """(f32 openvino.Model, its int8 quantization): quantized once (~15 s) for the module."""
    folder = tmp_path_factory.mktemp('int8')
    segmentor = calibrated(export_onnx_tool.build_segmentor(write_config(folder, HRNET_FCN)))
    f32 = ovd.convert_onnx(export_onnx(segmentor, str(folder / 'm.onnx'), (64, 64)))
    return f32, quantize_openvino(f32, _inputs(0, 4))


def _layer_precisions(compiled, layer_type):
    return [op.get_rt_info()['runtimePrecision'].astype(str)
            for op in compiled.get_runtime_model().get_ops()
            if op.get_rt_info()['layerType'].astype(str) == layer_type]


def test_every_convolution_runs_in_int8(models):
    f32, int8 = models
    ops = [op.get_type_name() for op in int8.get_ops()]
    convs = ops.count('Convolution')
    assert convs == 54 and 'FakeQuantize' not in [op.get_type_name() for op in f32.get_ops()]
    assert ops.count('FakeQuantize') >= convs  # activations and weights of each conv
    compiled = ovd.compile_model(int8, threads=1)
    assert ovd.compiled_properties(compiled)['precision'] == 'f32'  # the hint: non-int8 layers
    assert _layer_precisions(compiled, 'Convolution') == ['u8'] * convs
    assert set(_layer_precisions(ovd.compile_model(f32, threads=1), 'Convolution')) == {'f32'}


def test_int8_labels_agree_with_f32(models):
    f32, int8 = models
    run_f32 = ovd.runner(ovd.compile_model(f32, threads=1))
    run_int8 = ovd.runner(ovd.compile_model(int8, threads=1))
    for x in _inputs(100, 4, (1, 3, 64, 96)):  # held out, another size than calibrated on
        expected, got = run_f32(x), run_int8(x)
        assert got.shape == expected.shape == (1, 5, 64, 96)
        relative = np.abs(got - expected).max() / np.abs(expected).max()
        agreement = (got.argmax(1) == expected.argmax(1)).mean()
        print(f'int8 vs f32: label agreement {agreement:.3f}, logits {relative:.3f} relative')
        assert agreement >= MIN_LABEL_AGREEMENT
        assert 10 * DEEP < relative <= MAX_RELATIVE_LOGIT_DIFF


@pytest.mark.parametrize('calibration, kwargs, message', [
    ([], {}, r'calibration is empty: give at least one float32 \(N, 3, H, W\) array'),
    ([np.zeros((1, 3, 8, 8))], {}, r'calibration\[0\] has dtype float64 and shape '
                                   r'\(1, 3, 8, 8\); expected float32 of shape \(N, 3, H, W\)'),
    ([np.zeros((3, 8, 8), np.float32)], {}, r'calibration\[0\] has dtype float32 and shape '
                                            r'\(3, 8, 8\); expected float32'),
    ([torch.zeros(1, 3, 8, 8)], {}, r'calibration\[0\] is a Tensor; expected a float32 numpy'),
    (_inputs(0, 2), dict(subset_size=3), r'subset_size=3 is more than the 2 calibration '
                                         r'arrays given'),
    (_inputs(0, 2), dict(subset_size=0), r'subset_size must be an int >= 1, got 0'),
    (_inputs(0, 2), dict(preset='fast'), r"preset='fast' is not supported; allowed values: "
                                         r"'performance', 'mixed'"),
])
def test_bad_calibration_is_refused(calibration, kwargs, message):
    with pytest.raises(ValueError, match=message):
        quantize_openvino(None, calibration, **kwargs)


PIPELINE_CONFIG = dict(
    default_scope='mmseg', custom_imports=dict(imports=['mmseg_hrplus']),
    model=dict(HRNET_FCN, data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[100.0, 110.0, 120.0], std=[50.0, 60.0, 70.0],
        bgr_to_rgb=True)),
    test_pipeline=[dict(type='LoadImageFromFile'),
                   dict(type='Resize', scale=(48, 32), keep_ratio=False),
                   dict(type='LoadAnnotations'), dict(type='PackSegInputs')])


def test_calibration_arrays_are_the_preprocessed_pipeline_output(tmp_path):
    import mmcv
    from mmseg.apis import init_model
    config = tmp_path / 'pipeline.py'
    Config(PIPELINE_CONFIG).dump(str(config))
    segmentor = init_model(str(config), None, device='cpu')
    image = np.random.RandomState(0).randint(0, 256, (20, 30, 3), dtype=np.uint8)
    mmcv.imwrite(image, str(tmp_path / 'a.png'))
    arrays = calibration_arrays(segmentor, [tmp_path / 'a.png'])
    # by hand: the Resize step (to 48 x 32, mmcv's bilinear), BGR -> RGB, then (x - mean) / std;
    # LoadAnnotations is left out (there is no label file)
    resized = mmcv.imresize(image, (48, 32)).astype(np.float32)[..., ::-1]
    expected = ((resized - [100.0, 110.0, 120.0]) / [50.0, 60.0, 70.0]).transpose(2, 0, 1)
    assert len(arrays) == 1 and arrays[0].dtype == np.float32 and arrays[0].shape == (1, 3, 32, 48)
    np.testing.assert_allclose(arrays[0][0], expected, rtol=0, atol=1e-5)
    smaller = calibration_arrays(segmentor, [str(tmp_path / 'a.png')], size=(16, 24))
    assert smaller[0].shape == (1, 3, 16, 24)
    np.testing.assert_allclose(smaller[0], torch.nn.functional.interpolate(
        torch.from_numpy(arrays[0]), size=(16, 24), mode='bilinear').numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r'image_paths is empty'):
        calibration_arrays(segmentor, [])
    with pytest.raises(FileNotFoundError, match=r'calibration image .*missing.png is not a file'):
        calibration_arrays(segmentor, [tmp_path / 'missing.png'])
    with pytest.raises(ValueError, match=r'size must be 2 ints >= 1 \(H, W\), got \(16, 0\)'):
        calibration_arrays(segmentor, [tmp_path / 'a.png'], size=(16, 0))
