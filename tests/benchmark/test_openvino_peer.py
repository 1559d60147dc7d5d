"""mmseg_hrplus.benchmark.openvino_peer: a tiny HRNet+FCN (plain and optimised) exported,
converted and compiled in OpenVINO gives the model's ``mode='tensor'`` logits, compiled with the
asked threads, precision f32 and hint LATENCY (read back)."""
import openvino  # noqa: F401  (a CI dependency via requirements/openvino.txt: never skipped)
import pytest
import torch

from mmseg_hrplus.benchmark.openvino_peer import openvino_infer_fn
from mmseg_hrplus.benchmark.steps import infer_fn
from tests.helpers.float_bounds import DEEP, assert_close_relative
from tests.helpers.tiny_models import calibrated_tiny_hrnet_fcn

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]


@pytest.mark.parametrize('optimized', [False, True])
def test_openvino_gives_the_models_logits(tmp_path, optimized):
    model = calibrated_tiny_hrnet_fcn(tmp_path, optimized)
    x = torch.randn(1, 3, 64, 96)
    run, prepare_s, properties = openvino_infer_fn(model, x, threads=2)
    got, expected = run(), infer_fn(model, x)()
    assert prepare_s > 0
    assert (properties['precision'], properties['threads'], properties['hint']) == (
        'f32', 2, 'LATENCY')
    assert got.shape == expected.shape == (1, 5, 16, 24)
    assert float(expected.abs().max()) > 1e-2  # calibrated: not a vacuous comparison
    assert_close_relative(got, expected, DEEP, f'OpenVINO vs torch (optimized={optimized})')
    assert torch.equal(run(), got)  # the same input every call
