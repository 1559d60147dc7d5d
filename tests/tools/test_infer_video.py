"""tools/infer.py on videos (issue 15): overlaid video with the input's frame count, size and
fps, per-frame label PNGs, batch size without effect on the labels, and bad videos / unknown
formats named in one line each. The tiny model comes from conftest.py's ``tiny_run``."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmseg.apis import init_model

from mmseg_hrplus.apis.inference import segment_images
from mmseg_hrplus.apis.overlay import overlay_labels
from mmseg_hrplus.apis.video import SUPPORTED_FORMATS
from tests.helpers.label_ties import assert_labels_equal_where_decided
from tests.helpers.video_files import (decode_all, moving_frames, properties, truncated_copy,
                                       write_video)
from tests.helpers.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
infer = load_tool('infer.py')

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]
FRAMES, HEIGHT, WIDTH, FPS = 6, 64, 128, 10.0


def read_labels(folder: Path):
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f'frame_{i:06d}.png' for i in range(len(files))]
    return [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]


@pytest.mark.parametrize('extension', ['.avi', '.mp4'])
def test_video_gives_overlay_video_and_frame_labels(tiny_run, tiny_run_palette, tmp_path,
                                                    capsys, extension):
    """6 frames of 64x128 at 10 fps (MJPG .avi, mp4v .mp4), batches of 4 (4 + 2): the overlay
    video has the input's frame count, size and fps; one label PNG per frame, equal to
    segmenting each decoded frame alone (up to pixels within float rounding of a tie: a batch
    rounds differently); the overlay frames are those labels painted over the
    frames, up to the codec's loss."""
    config, checkpoint, _ = tiny_run
    video = write_video(tmp_path / f'clip{extension}', moving_frames(FRAMES, HEIGHT, WIDTH), FPS)
    out = tmp_path / 'out'
    written = infer.main([str(config), str(checkpoint), str(video), '--out-dir', str(out),
                          '--save-labels', '--batch-size', '4'])
    overlay = out / 'overlays' / f'clip{extension}'
    assert written == [dict(video=str(video), overlay=str(overlay),
                            labels=str(out / 'labels' / 'clip'), frames=FRAMES)]
    assert properties(overlay) == (FRAMES, FPS, (WIDTH, HEIGHT))
    overlay_frames = decode_all(overlay)
    assert len(overlay_frames) == FRAMES
    labels = read_labels(out / 'labels' / 'clip')
    assert len(labels) == FRAMES
    model = init_model(str(config), str(checkpoint), device='cpu')
    for frame, label, painted in zip(decode_all(video), labels, overlay_frames):
        assert label.dtype == np.uint8 and label.shape == (HEIGHT, WIDTH)
        assert label.max() < 5 and len(np.unique(label)) > 1
        assert_labels_equal_where_decided(label, segment_images(model, frame).seg_logits.data)
        expected = overlay_labels(frame, label, tiny_run_palette, 0.5).astype(np.float64)
        codec_loss = np.abs(painted - expected).mean()
        assert codec_loss < 0.2 * np.abs(painted - frame.astype(np.float64)).mean(), codec_loss
    assert re.search(rf'clip{re.escape(extension)}: 6/6 frames in \d+\.\d s, \d+\.\d\d '
                     r'frames/s', capsys.readouterr().err)


def test_batch_size_does_not_change_the_labels(tiny_run, tmp_path):
    """Batches of 1, 4 (4 + 2) and 5 (5 + 1): the same labels, up to pixels within float
    rounding of a tie (one of 8192 differed between batches of 1 and 4 with torch 2.1)."""
    config, checkpoint, _ = tiny_run
    video = write_video(tmp_path / 'clip.avi', moving_frames(FRAMES, HEIGHT, WIDTH), FPS)
    runs = {}
    for batch_size in (1, 4, 5):
        out = tmp_path / f'out{batch_size}'
        infer.main([str(config), str(checkpoint), str(video), '--out-dir', str(out),
                    '--save-labels', '--batch-size', str(batch_size)])
        runs[batch_size] = read_labels(out / 'labels' / 'clip')
        assert len(runs[batch_size]) == FRAMES
    model = init_model(str(config), str(checkpoint), device='cpu')
    for index, frame in enumerate(decode_all(video)):
        logits = segment_images(model, frame).seg_logits.data
        for batch_size in (1, 4, 5):
            assert_labels_equal_where_decided(runs[batch_size][index], logits)


def test_bad_videos_are_named_and_the_run_goes_on(tiny_run, tmp_path, capsys):
    """A folder with a good video, random bytes named .mp4, an empty .avi and a video cut at
    3/4 of its bytes, and a list naming the good video and a .xyz file: every bad item gets one
    line naming it (with the supported formats where the file is not a usable video), the cut
    video keeps the frames that decoded, the good one is complete, the run exits with 1."""
    config, checkpoint, _ = tiny_run
    videos = tmp_path / 'videos'
    good = write_video(videos / 'a_good.avi', moving_frames(FRAMES, HEIGHT, WIDTH), FPS)
    noise = videos / 'b_noise.mp4'
    noise.write_bytes(np.random.RandomState(0).bytes(5000))
    empty = videos / 'c_empty.avi'
    empty.write_bytes(b'')
    cut = truncated_copy(good, videos / 'd_cut.avi')
    decodable = len(decode_all(cut))
    assert 0 < decodable < FRAMES
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(videos), '--out-dir', str(out)])
    assert info.value.code == 1
    assert len(decode_all(out / 'overlays' / 'a_good.avi')) == FRAMES
    assert len(decode_all(out / 'overlays' / 'd_cut.avi')) == decodable
    assert sorted(p.name for p in (out / 'overlays').iterdir()) == ['a_good.avi', 'd_cut.avi']
    err = capsys.readouterr().err
    assert [line.strip() for line in err.splitlines() if line.startswith('  ')] == [
        f'cannot read video {noise} (5000 bytes): no decodable video frame (corrupted, '
        f'truncated, or not a video at all); supported formats: {SUPPORTED_FORMATS}',
        f'cannot read video {empty}: the file is empty (0 bytes); supported formats: '
        f'{SUPPORTED_FORMATS}',
        f'video {cut}: decoding stopped after {decodable} of the 6 frames the file declares '
        f'(truncated or corrupted data); kept the {decodable} frames decoded in '
        f'{out / "overlays" / "d_cut.avi"}']
    assert '3 input(s) failed:' in err

    notes = videos / 'notes.xyz'
    notes.write_text('not a video\n')
    listing = tmp_path / 'inputs.txt'
    listing.write_text(f'{notes}\n{good}\n')
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(listing), '--out-dir', str(tmp_path / 'l')])
    assert info.value.code == 1
    assert len(decode_all(tmp_path / 'l' / 'overlays' / 'a_good.avi')) == FRAMES
    assert [line.strip() for line in capsys.readouterr().err.splitlines()
            if line.startswith('  ')] == [
        f"cannot segment {notes}: unsupported format '.xyz'; supported formats: "
        f'{SUPPORTED_FORMATS}']


def test_unknown_format_or_corrupt_video_as_input(tiny_run, tmp_path, capsys):
    """INPUT of an unknown format: one error line naming it and every supported format, exit 1,
    before the model is built. INPUT a corrupt video: its line, exit 1, nothing written."""
    config, checkpoint, _ = tiny_run
    model_file = tmp_path / 'model.onnx'
    model_file.write_bytes(b'\x08\x07')
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(model_file)])
    assert info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot segment {model_file}: unsupported format '.onnx'; supported formats: "
        'images .png .jpg .jpeg .bmp .tif .tiff .webp; videos .avi .mp4 .mov .mkv .m4v .webm '
        '.mpg .mpeg; list files .txt .lst .list']
    noise = tmp_path / 'noise.avi'
    noise.write_bytes(np.random.RandomState(1).bytes(2000))
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(noise), '--out-dir', str(out)])
    assert info.value.code == 1
    assert f'  cannot read video {noise} (2000 bytes): no decodable video frame' in (
        capsys.readouterr().err)
    assert not (out / 'overlays').exists()
