"""mmseg_hrplus.apis video pieces: batched segmentation, the overlay blend, the frame reader,
segment_video on a truncated file, and the rate progress line (issue 15)."""
import io
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.apis import init_model
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer
from mmengine.structures import PixelData

from mmseg_hrplus.apis.inference import segment_batch, segment_images
from mmseg_hrplus.apis.overlay import class_palette, overlay_labels
from mmseg_hrplus.apis.progress import RateProgress
from mmseg_hrplus.apis.video import (SUPPORTED_FORMATS, UnreadableVideoError, VideoReader,
                                     segment_video)
from tests.helpers.float_bounds import DEEP, assert_close_relative
from tests.helpers.label_ties import assert_labels_equal_where_decided
from tests.helpers.video_files import (decode_all, moving_frames, properties, truncated_copy,
                                       write_video)

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]
CONFIG = Path(__file__).resolve().parents[2] / 'configs/quickstart/hrnet_w18s_synthetic.py'


@pytest.fixture(scope='module')
def quickstart_model():
    """The quickstart HRNet-W18-small + FCN, randomly initialised, classifier scaled up so
    several of the 19 classes win somewhere."""
    torch.manual_seed(0)
    model = init_model(Config.fromfile(str(CONFIG)), None, device='cpu')
    torch.nn.init.normal_(model.decode_head.conv_seg.weight, std=10.0)
    return model


def test_segment_batch_equals_one_image_at_a_time(quickstart_model):
    """Five 64x96 frames in batches of 4 + 1 against segment_images one by one: logits within
    the bound for the same network computed by other kernels (oneDNN blocks a batch of 4
    differently), labels equal wherever the two best logits are further apart than that."""
    frames = moving_frames(5, 64, 96)
    batched = segment_batch(quickstart_model, frames[:4]) + segment_batch(quickstart_model,
                                                                          frames[4:])
    alone = segment_images(quickstart_model, frames)
    logits_b = torch.stack([r.seg_logits.data for r in batched])
    logits_1 = torch.stack([r.seg_logits.data for r in alone])
    assert logits_b.shape == (5, 19, 64, 96)
    assert_close_relative(logits_b, logits_1, DEEP, 'batched vs one-at-a-time logits')
    labels_1 = torch.stack([r.pred_sem_seg.data[0] for r in alone])
    assert torch.equal(labels_1, logits_1.argmax(1)) and len(torch.unique(labels_1)) > 2
    for result, logits in zip(batched, logits_1):
        assert result.pred_sem_seg.data.shape == (1, 64, 96)
        assert_labels_equal_where_decided(result.pred_sem_seg.data[0], logits)


def test_segment_batch_refuses_mixed_sizes(quickstart_model):
    frames = moving_frames(2, 64, 96) + moving_frames(1, 64, 64)
    with pytest.raises(ValueError, match=re.escape(
            'segment_batch takes images of one size, got shapes [(64, 96, 3), (64, 96, 3), '
            '(64, 64, 3)]; use segment_images for mixed sizes')):
        segment_batch(quickstart_model, frames)
    with pytest.raises(ValueError, match='segment_batch needs at least one image'):
        segment_batch(quickstart_model, [])


def test_overlay_equals_mmseg_visualizer():
    """Bit for bit what SegLocalVisualizer draws (with_labels=False), label 6 being outside the
    5-colour palette (left black, as mmseg does)."""
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (40, 56, 3), dtype=np.uint8)  # BGR
    labels = rng.randint(0, 7, (40, 56))
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (10, 20, 30)]
    visualizer = SegLocalVisualizer(name='test_overlay_equals_mmseg', alpha=0.3)
    visualizer.set_dataset_meta(classes=[f'c{i}' for i in range(5)], palette=palette)
    sample = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(labels)[None]))
    visualizer.add_datasample('x', image[..., ::-1].copy(), sample, draw_gt=False,
                              with_labels=False)
    ours = overlay_labels(image, labels, palette, 0.3)
    assert ours.dtype == np.uint8 and ours.shape == (40, 56, 3)
    np.testing.assert_array_equal(ours[..., ::-1], visualizer.get_image())
    with pytest.raises(ValueError, match=re.escape('opacity=1.5 must be in [0, 1]')):
        overlay_labels(image, labels, palette, 1.5)
    with pytest.raises(ValueError, match=re.escape(
            'labels of shape (40, 55) do not match the image of shape (40, 56, 3)')):
        overlay_labels(image, labels[:, :55], palette, 0.3)


def test_class_palette_covers_every_class():
    model = SimpleNamespace(decode_head=SimpleNamespace(num_classes=7),
                            dataset_meta=dict(classes=['a', 'b'], palette=[[1, 2, 3], [4, 5, 6]]))
    classes, palette = class_palette(model)
    assert classes == ['a', 'b', 'class 2', 'class 3', 'class 4', 'class 5', 'class 6']
    assert palette[:2] == [(1, 2, 3), (4, 5, 6)] and len(set(palette)) == 7
    assert class_palette(model) == (classes, palette)  # seeded: the same on every call


def test_video_reader_batches(tmp_path):
    frames = moving_frames(6, 64, 128)
    video = write_video(tmp_path / 'clip.avi', frames, fps=12.0)
    with VideoReader(video) as reader:
        assert (reader.fps, reader.width, reader.height, reader.declared_frames) == (
            12.0, 128, 64, 6)
        batches = list(reader.batches(4))
        assert [len(batch) for batch in batches] == [4, 2]
        assert reader.frames_read == 6 and not reader.stopped_early
    decoded = decode_all(video)  # MJPG is lossy: compare with a plain cv2 decode
    for got, expected in zip(batches[0] + batches[1], decoded):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match='batch_size=0 must be at least 1'):
        next(VideoReader(video).batches(0))


def test_video_reader_errors_name_the_file_and_the_formats(tmp_path):
    missing = tmp_path / 'x.mp4'
    with pytest.raises(FileNotFoundError, match=re.escape(f'video not found: {missing}')):
        VideoReader(missing)
    empty = tmp_path / 'empty.avi'
    empty.write_bytes(b'')
    with pytest.raises(UnreadableVideoError) as info:
        VideoReader(empty)
    assert str(info.value) == (f'cannot read video {empty}: the file is empty (0 bytes); '
                               f'supported formats: {SUPPORTED_FORMATS}')
    noise = tmp_path / 'noise.mp4'
    noise.write_bytes(np.random.RandomState(0).bytes(3000))
    with pytest.raises(UnreadableVideoError) as info:
        VideoReader(noise)
    assert str(info.value) == (
        f'cannot read video {noise} (3000 bytes): no decodable video frame (corrupted, '
        f'truncated, or not a video at all); supported formats: {SUPPORTED_FORMATS}')
    assert SUPPORTED_FORMATS == ('images .png .jpg .jpeg .bmp .tif .tiff .webp; '
                                 'videos .avi .mp4 .mov .mkv .m4v .webm .mpg .mpeg')


def test_segment_video_keeps_the_frames_before_a_decode_failure(quickstart_model, tmp_path):
    """A video cut at 3/4 of its bytes: the frames that decode are segmented and written, and
    the result says where decoding stopped instead of raising."""
    full = write_video(tmp_path / 'full.avi', moving_frames(6, 64, 96))
    cut = truncated_copy(full, tmp_path / 'cut.avi')
    decodable = len(decode_all(cut))
    assert 0 < decodable < 6 and properties(cut)[0] == 6
    overlay, labels = tmp_path / 'out' / 'cut.avi', tmp_path / 'out' / 'cut'
    result = segment_video(quickstart_model, cut, overlay, labels, batch_size=4, progress=False)
    assert (result.frames, result.declared_frames, result.size) == (decodable, 6, (96, 64))
    assert result.error == (
        f'video {cut}: decoding stopped after {decodable} of the 6 frames the file declares '
        f'(truncated or corrupted data); kept the {decodable} frames decoded in {overlay} and '
        f'{labels}')
    assert len(decode_all(overlay)) == decodable
    assert sorted(p.name for p in labels.iterdir()) == [
        f'frame_{i:06d}.png' for i in range(decodable)]


def test_rate_progress_off_a_terminal():
    """A log gets a line per tenth of the total (step 2 for 20; updates of 4 cross one each
    time) and a final line with the rate, no carriage returns."""
    stream = io.StringIO()
    progress = RateProgress(20, label='clip.mp4', stream=stream)
    for _ in range(5):
        progress.update(4)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert '\r' not in stream.getvalue()
    assert [line.split(',')[0] for line in lines[:-1]] == [
        'clip.mp4: 4/20 frames', 'clip.mp4: 8/20 frames', 'clip.mp4: 12/20 frames',
        'clip.mp4: 16/20 frames']
    assert all(re.fullmatch(r'[^,]+, \d+\.\d\d frames/s, ETA \d+ s', line) for line in lines[:-1])
    assert re.fullmatch(r'clip\.mp4: 20/20 frames in \d+\.\d s, \d+\.\d\d frames/s', lines[-1])


def test_rate_progress_on_a_terminal_redraws_one_line():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = RateProgress(None, stream=stream, tty_interval=0.0)
    progress.update(3)
    progress.update(2)
    progress.close()
    text = stream.getvalue()
    assert text.count('\r') == 3 and text.count('\n') == 1 and text.endswith('\x1b[K\n')
    assert '\r3 frames, ' in text and '\r5 frames, ' in text
