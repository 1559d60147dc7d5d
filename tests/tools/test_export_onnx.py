"""tools/deployment/export_onnx.py: one dynamic-size ONNX graph matches PyTorch at any size.

A narrow HRNet + FCN head and a narrow BiSeNetV2 + BGA head are exported on a 64x128 example and
run by onnxruntime at 64x128 and at sizes that are not multiples of 32 (72x100: HRNet streams
18x25, 9x13, 5x7, 3x4, where the fusion takes mmseg's two-step resize). Before the export fix the
HRNet graph was 67 off at 72x100 (the odd-size test was frozen at the example). BN statistics
are calibrated on random images so the logits have a realistic magnitude (a few units). The
bounds are relative to the largest logit (tests/helpers/float_bounds.py): onnxruntime's kernels
sum in another order than PyTorch's, and a Winograd backbone is exported as plain Conv nodes, so
onnxruntime's direct conv is compared with PyTorch's Winograd arithmetic.
"""
from pathlib import Path

import onnxruntime  # noqa: F401  (a CI dependency via requirements/onnx.txt: never skipped)
import pytest
import torch
from mmengine.config import Config

from tests.helpers.tiny_models import tiny_hrnet_extra
from tests.helpers.float_bounds import DEEP, WINOGRAD_DEEP, assert_close_relative, check_relative
from tests.helpers.tools import load_tool

pytestmark = pytest.mark.torch21

REPO = Path(__file__).resolve().parents[2]
export_onnx = load_tool('deployment/export_onnx.py')

NORM = dict(type='BN', requires_grad=True)
PREPROCESSOR = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
TINY_HRNET_EXTRA = tiny_hrnet_extra(widths=(8, 16, 32, 64), stem_channels=16)
HRNET_FCN = dict(
    type='EncoderDecoder', data_preprocessor=PREPROCESSOR,
    backbone=dict(type='mmseg_hrplus.HRNet', extra=TINY_HRNET_EXTRA, norm_cfg=NORM),
    decode_head=dict(type='FCNHead', in_channels=[8, 16, 32, 64], in_index=(0, 1, 2, 3),
                     input_transform='resize_concat', channels=16, kernel_size=1, num_convs=1,
                     concat_input=False, dropout_ratio=-1, num_classes=5, norm_cfg=NORM,
                     align_corners=False),
    test_cfg=dict(mode='whole'))
BISENETV2_BGA = dict(
    type='EncoderDecoder', data_preprocessor=PREPROCESSOR,
    backbone=dict(type='mmseg_hrplus.BiSeNetV2', detail_channels=(8, 8, 16),
                  detail_depths=(1, 1, 1), semantic_channels=(8, 8, 16, 16),
                  semantic_depths=(1, 1, 1), expand_ratio=2, norm_cfg=NORM),
    decode_head=dict(type='mmseg_hrplus.BGAHead', in_channels=(16, 16), in_index=(0, 1),
                     bga_channels=16, channels=32, num_classes=5, norm_cfg=NORM,
                     align_corners=False),
    auxiliary_head=dict(type='mmseg_hrplus.BoosterHead', in_channels=8, channels=8, in_index=2,
                        num_classes=5, norm_cfg=NORM),
    test_cfg=dict(mode='whole'))


def write_config(tmp_path: Path, model: dict) -> str:
    path = tmp_path / 'tiny.py'
    Config(dict(default_scope='mmseg', custom_imports=dict(imports=['mmseg_hrplus']),
                model=model)).dump(str(path))
    return str(path)


def calibrated(segmentor: torch.nn.Module) -> torch.nn.Module:
    """Random init (classifier with std 1 instead of 0.01), then BN running statistics from a
    few random batches."""
    segmentor.init_weights()
    torch.nn.init.normal_(segmentor.decode_head.conv_seg.weight, std=1.0)
    for m in segmentor.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    segmentor.train()
    with torch.no_grad():
        for _ in range(3):
            segmentor.decode_head(segmentor.extract_feat(torch.randn(2, 3, 64, 96)))
    return segmentor.eval()


TRACE_SAFE = pytest.mark.filterwarnings('error::torch.jit.TracerWarning')


@TRACE_SAFE
@pytest.mark.parametrize('model', [HRNET_FCN, BISENETV2_BGA], ids=['hrnet_fcn', 'bisenetv2_bga'])
def test_exported_graph_matches_pytorch_at_two_sizes(tmp_path, model):
    segmentor = calibrated(export_onnx.build_segmentor(write_config(tmp_path, model)))
    assert getattr(segmentor, 'auxiliary_head', None) is None
    out = export_onnx.export_onnx(segmentor, str(tmp_path / 'tiny.onnx'), (64, 128))
    report = export_onnx.verify_onnx(segmentor, out, [(64, 128), (72, 100), (97, 61)])
    for r in report:
        assert 1.0 < r['max_abs_logit'] < 100.0, r  # calibrated: realistic logits
        check_relative(r['max_abs_diff'], r['max_abs_logit'], DEEP,
                       f'onnxruntime vs PyTorch at {r["shape"]}')


@TRACE_SAFE
@pytest.mark.parametrize('head', ['factorised', 'resize_sum', 'resize_sum_winograd'])
def test_optimized_model_exports_at_any_size(tmp_path, head):
    """optimize_for_inference's factorised head (ResizeSumFCNHead) resizes per stream; its size
    test must not be frozen at the example input either."""
    from mmseg_hrplus.deploy import optimize_for_inference
    from mmseg_hrplus.models.decode_heads import ResizeSumFCNHead

    model = dict(HRNET_FCN, decode_head=dict(HRNET_FCN['decode_head']))
    if head.startswith('resize_sum'):  # the layout of configs/hrnet/hrnet_w48_fast_*
        model['decode_head']['type'] = 'mmseg_hrplus.ResizeSumFCNHead'
    if head.endswith('winograd'):  # exported as plain Conv nodes, whatever the input size
        model['backbone'] = dict(model['backbone'], conv_cfg=dict(
            type='mmseg_hrplus.WinogradConv2d', min_channels=8))
    segmentor = calibrated(export_onnx.build_segmentor(write_config(tmp_path, model)))
    fast = optimize_for_inference(segmentor, factorize_head=True)
    if head.endswith('winograd'):
        assert any(getattr(m, 'uses_winograd', False) for m in fast.modules())
    # an FCNHead ('factorised') is replaced by the ResizeSumFCNHead with its weights
    assert type(fast.decode_head) is ResizeSumFCNHead
    out = export_onnx.export_onnx(fast, str(tmp_path / 'fast.onnx'), (64, 128))
    # onnxruntime's direct conv vs PyTorch's Winograd for the 'winograd' case
    bound = WINOGRAD_DEEP if head.endswith('winograd') else DEEP
    for r in export_onnx.verify_onnx(fast, out, [(64, 128), (72, 100), (97, 61)]):
        assert 1.0 < r['max_abs_logit'] < 100.0, r
        check_relative(r['max_abs_diff'], r['max_abs_logit'], bound,
                       f'{head}: onnxruntime vs PyTorch at {r["shape"]}')


def test_cli_exports_a_checkpoint_and_verifies(tmp_path, capsys):
    config = write_config(tmp_path, HRNET_FCN)
    segmentor = calibrated(export_onnx.build_segmentor(config))
    checkpoint = tmp_path / 'tiny.pth'
    torch.save(dict(meta=dict(), state_dict=segmentor.state_dict()), checkpoint)
    report = export_onnx.main([config, str(checkpoint), str(tmp_path / 'cli.onnx'),
                               '--shape', '64', '128', '--verify'])
    assert [r['shape'] for r in report] == [(64, 128), (72, 132)]
    for r in report:
        check_relative(r['max_abs_diff'], r['max_abs_logit'], DEEP,
                       f'CLI --verify at {r["shape"]}')
    assert capsys.readouterr().out.count(' OK') == 2
    # the exported logits are those of the checkpoint's weights, at the input size
    import onnxruntime as ort
    img = torch.randn(3, 3, 40, 56)  # a batch of 3: the batch axis is dynamic too
    logits = ort.InferenceSession(str(tmp_path / 'cli.onnx')).run(None, {'input': img.numpy()})[0]
    with torch.no_grad():
        ref = export_onnx.SegmentorLogits(segmentor)(img)
    assert logits.shape == (3, 5, 40, 56)
    assert_close_relative(logits, ref, DEEP, 'onnxruntime vs PyTorch, batch of 3')


def test_detector_config_and_wrong_checkpoint_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"default_scope='mmdet': export_onnx exports "
                                         r"segmentors \(default_scope 'mmseg'\)"):
        export_onnx.build_segmentor(str(REPO / 'configs/mmdet/faster-rcnn_hrnetv2p-w18_1x_coco.py'))
    bisenet = export_onnx.build_segmentor(write_config(tmp_path, BISENETV2_BGA))
    checkpoint = tmp_path / 'bisenet.pth'
    torch.save(dict(state_dict=bisenet.state_dict()), checkpoint)
    with pytest.raises(ValueError, match=r'bisenet.pth does not fit the config\'s model: missing '
                                         r'keys \[\'backbone.conv1.weight\''):
        export_onnx.build_segmentor(write_config(tmp_path, HRNET_FCN), str(checkpoint))


def test_cli_writes_openvino_ir_and_verifies_it(tmp_path, capsys):
    """--openvino writes cli.xml/.bin beside cli.onnx; --verify then checks onnxruntime and
    OpenVINO (f32, 1 thread: what it reports is printed) on the same two sizes."""
    config = write_config(tmp_path, BISENETV2_BGA)
    segmentor = calibrated(export_onnx.build_segmentor(config))
    checkpoint = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=segmentor.state_dict()), checkpoint)
    report = export_onnx.main([config, str(checkpoint), str(tmp_path / 'cli.onnx'),
                               '--shape', '64', '128', '--verify', '--openvino',
                               '--ov-threads', '1'])
    assert [(r['backend'], r['shape']) for r in report] == [
        ('onnxruntime', (64, 128)), ('onnxruntime', (72, 132)),
        ('openvino', (64, 128)), ('openvino', (72, 132))]
    for r in report:
        check_relative(r['max_abs_diff'], r['max_abs_logit'], DEEP,
                       f'CLI --verify {r["backend"]} at {r["shape"]}')
    out = capsys.readouterr().out
    assert out.count(' OK') == 4 and 'max |openvino - torch|' in out
    assert 'precision f32, 1 threads, hint LATENCY' in out
    assert (tmp_path / 'cli.xml').is_file() and (tmp_path / 'cli.bin').is_file()
    # the IR holds the checkpoint's weights: run it on another size and batch
    from mmseg_hrplus.deploy.openvino import compile_model, runner
    img = torch.randn(2, 3, 40, 56)
    logits = runner(compile_model(str(tmp_path / 'cli.xml'), threads=1))(img.numpy())
    with torch.no_grad():
        ref = export_onnx.SegmentorLogits(segmentor)(img)
    assert logits.shape == (2, 5, 40, 56)
    assert_close_relative(logits, ref, DEEP, 'OpenVINO IR vs PyTorch, batch of 2')
