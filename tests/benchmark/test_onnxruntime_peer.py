"""mmseg_hrplus.benchmark.onnxruntime_peer: a tiny HRNet+FCN (plain and optimised) exported and
run by onnxruntime gives the model's ``mode='tensor'`` logits, with the asked thread count."""
import pytest
import torch

from mmseg_hrplus.benchmark.build import build_model
from mmseg_hrplus.benchmark.onnxruntime_peer import onnxruntime_infer_fn, onnxruntime_session
from mmseg_hrplus.benchmark.steps import infer_fn
from tests.helpers.float_bounds import DEEP, assert_close_relative
from tests.helpers.tiny_models import calibrated_tiny_hrnet_fcn, write_tiny_hrnet_fcn_configs

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]


@pytest.mark.parametrize('optimized', [False, True])
def test_onnxruntime_gives_the_models_logits(tmp_path, optimized):
    model = calibrated_tiny_hrnet_fcn(tmp_path, optimized)
    x = torch.randn(1, 3, 64, 96)
    run, prepare_s = onnxruntime_infer_fn(model, x, threads=1)
    got, expected = run(), infer_fn(model, x)()
    assert prepare_s > 0
    assert got.shape == expected.shape == (1, 5, 16, 24)
    assert float(expected.abs().max()) > 1e-2  # calibrated: not a vacuous comparison
    assert_close_relative(got, expected, DEEP, f'onnxruntime vs torch (optimized={optimized})')
    assert torch.equal(run(), got)  # the same input every call


def test_session_options(tmp_path):
    ours, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    from mmseg_hrplus.deploy.onnx_export import export_onnx
    path = export_onnx(build_model(str(ours)).eval(), str(tmp_path / 'm.onnx'), (64, 64),
                       resize=False)
    session = onnxruntime_session(path, threads=2)
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert session.get_providers() == ['CPUExecutionProvider']
    assert [o.name for o in session.get_outputs()] == ['logits']
