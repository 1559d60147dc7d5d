"""tools/infer.py --backend onnxruntime / openvino: the exported graph run by a runtime gives the
PyTorch backend's labels (up to pixels within float rounding of a tie,
tests/helpers/label_ties.py), the same overlays, and the same bad-input lines, for images and a
video. The tiny model fixtures are in conftest.py."""
import mmcv
import numpy as np
import onnxruntime  # noqa: F401  (CI dependencies via requirements/onnx.txt and openvino.txt)
import openvino  # noqa: F401
import pytest
from mmseg.apis import init_model

from mmseg_hrplus.apis.inference import segment_images
from mmseg_hrplus.apis.overlay import overlay_labels
from tests.helpers.label_ties import assert_labels_equal_where_decided
from tests.helpers.tools import load_tool
from tests.helpers.video_files import decode_all, moving_frames, write_video

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]
infer = load_tool('infer.py')
BACKENDS = ['onnxruntime', 'openvino']


@pytest.mark.parametrize('backend', BACKENDS)
def test_images_give_the_pytorch_labels_and_overlays(tiny_run, tiny_run_palette, tmp_path,
                                                     capsys, backend):
    config, checkpoint, images = tiny_run
    out = tmp_path / backend
    written = infer.main([str(config), str(checkpoint), str(images), '--out-dir', str(out),
                          '--backend', backend])
    printed = capsys.readouterr().out
    assert f'backend {backend}: ' in printed
    if backend == 'openvino':
        assert 'precision f32, threads 1, hint LATENCY' in printed
    model = init_model(str(config), str(checkpoint), device='cpu')
    assert [e['label'] for e in written] == [str(out / 'labels' / 'colour.png'),
                                             str(out / 'labels' / 'sub' / 'gray.png')]
    for entry, shape in zip(written, [(40, 56), (33, 47)]):
        labels = mmcv.imread(entry['label'], flag='unchanged')
        assert labels.dtype == np.uint8 and labels.shape == shape
        assert len(np.unique(labels)) > 1
        logits = segment_images(model, entry['image']).seg_logits.data
        assert_labels_equal_where_decided(labels, logits)
        overlay = mmcv.imread(entry['overlay'])
        np.testing.assert_array_equal(
            overlay, overlay_labels(mmcv.imread(entry['image']), labels, tiny_run_palette, 0.5))


@pytest.mark.parametrize('backend', BACKENDS)
def test_video_gives_the_pytorch_labels(tiny_run, tmp_path, backend):
    config, checkpoint, _ = tiny_run
    video = write_video(tmp_path / 'clip.avi', moving_frames(5, 64, 96), 10.0)
    out = tmp_path / 'out'
    written = infer.main([str(config), str(checkpoint), str(video), '--out-dir', str(out),
                          '--save-labels', '--batch-size', '2', '--backend', backend])
    assert written == [dict(video=str(video), overlay=str(out / 'overlays' / 'clip.avi'),
                            labels=str(out / 'labels' / 'clip'), frames=5)]
    assert len(decode_all(out / 'overlays' / 'clip.avi')) == 5
    model = init_model(str(config), str(checkpoint), device='cpu')
    for index, frame in enumerate(decode_all(video)):
        labels = mmcv.imread(str(out / 'labels' / 'clip' / f'frame_{index:06d}.png'),
                             flag='unchanged')
        assert_labels_equal_where_decided(labels, segment_images(model, frame).seg_logits.data)


def _failure_lines(config, checkpoint, folder, out, backend, capsys):
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(folder), '--out-dir', str(out),
                    '--backend', backend])
    assert info.value.code == 1
    return ([line.strip() for line in capsys.readouterr().err.splitlines()
             if line.startswith('  ')],
            sorted(p.relative_to(out).as_posix() for p in out.rglob('*.png')))


@pytest.mark.parametrize('backend', BACKENDS)
def test_bad_inputs_are_refused_like_pytorch(tiny_run, tmp_path, capsys, backend):
    """Text named .jpg, an empty PNG, a 1x1 image, an empty .avi beside the good images: the
    same failure lines and the same files written as with the pytorch backend."""
    config, checkpoint, images = tiny_run
    (images / 'a_text.jpg').write_text('not an image\n')
    (images / 'c_empty.png').write_bytes(b'')
    mmcv.imwrite(np.zeros((1, 1, 3), np.uint8), str(images / 'd_tiny.png'))
    (images / 'e_empty.avi').write_bytes(b'')
    reference = _failure_lines(config, checkpoint, images, tmp_path / 'pytorch', 'pytorch',
                               capsys)
    assert len(reference[0]) == 4 and len(reference[1]) == 4  # 4 failures, 2 images written
    assert _failure_lines(config, checkpoint, images, tmp_path / backend, backend,
                          capsys) == reference


def test_runtime_backends_refuse_crf_gpu_and_unknown_names(tiny_run, tmp_path, capsys):
    config, checkpoint, images = tiny_run
    with pytest.raises(ValueError, match=r"backend='openvino' runs on the CPU without the dense "
                                         r"CRF; got device='cpu', crf=True"):
        infer.run_inference(str(config), str(checkpoint), str(images), str(tmp_path),
                            crf=True, backend='openvino')
    with pytest.raises(ValueError, match=r"backend='onnxruntime' runs on the CPU without the "
                                         r"dense CRF; got device='cuda:0', crf=False"):
        infer.run_inference(str(config), str(checkpoint), str(images), str(tmp_path),
                            device='cuda:0', backend='onnxruntime')
    with pytest.raises(ValueError, match=r"backend='tensorrt' is not supported; allowed "
                                         r"values: 'pytorch', 'onnxruntime', 'openvino'"):
        infer.run_inference(str(config), str(checkpoint), str(images), str(tmp_path),
                            backend='tensorrt')
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(images), '--backend', 'tensorrt'])
    assert info.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_runtime_segmentor_refuses_other_segmentors_and_slide_mode(tiny_run, tmp_path):
    from mmseg_hrplus.deploy.runtime import runtime_segmentor
    config, checkpoint, _ = tiny_run
    model = init_model(str(config), str(checkpoint), device='cpu')
    model.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(32, 32))
    work = tmp_path / 'export'
    work.mkdir()
    with pytest.raises(ValueError, match=r"backend='openvino' supports test_cfg mode 'whole'; "
                                         r"got mode='slide'"):
        runtime_segmentor(model, 'openvino', str(work))
    assert not list(work.iterdir())  # refused before the export
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))  # multi-scale test: its inference is not the graph's
    cfg.model = dict(cfg.model, type='mmseg_hrplus.MSCEncoderDecoder')
    msc = init_model(cfg, str(checkpoint), device='cpu')
    with pytest.raises(ValueError, match=r"backend='onnxruntime' runs an mmseg EncoderDecoder; "
                                         r"got MSCEncoderDecoder \(use the pytorch backend\)"):
        runtime_segmentor(msc, 'onnxruntime', str(work))
