"""tools/infer.py: a folder of images (one grayscale, odd sizes) -> label PNGs and overlays.
The tiny model fixtures are in conftest.py; videos are tested in test_infer_video.py."""
from pathlib import Path

import mmcv
import numpy as np
import pytest

from tests.helpers.tools import load_tool

pytestmark = pytest.mark.torch21

REPO = Path(__file__).resolve().parents[2]
infer = load_tool('infer.py')


def test_folder_gives_labels_and_overlays(tiny_run, tiny_run_palette, tmp_path, capsys):
    config, checkpoint, images = tiny_run
    out = tmp_path / 'out'
    written = infer.main([str(config), str(checkpoint), str(images), '--out-dir', str(out),
                          '--opacity', '0.5'])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*.png')) == [
        'labels/colour.png', 'labels/sub/gray.png', 'overlays/colour.png',
        'overlays/sub/gray.png']
    assert '2/2' in capsys.readouterr().out  # the progress bar
    from mmseg.apis import inference_model, init_model
    model = init_model(str(config), str(checkpoint), device='cpu')
    for entry, shape in zip(written, [(40, 56), (33, 47)]):
        labels = mmcv.imread(entry['label'], flag='unchanged')
        assert labels.dtype == np.uint8 and labels.shape == shape
        assert labels.max() < 5 and len(np.unique(labels)) > 1
        # the labels are mmseg's own prediction for the file
        expected = inference_model(model, entry['image']).pred_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(labels, expected)
        # overlay = 0.5 image + 0.5 class colour, in the checkpoint's palette (RGB)
        overlay = mmcv.imread(entry['overlay'], channel_order='rgb')
        image = mmcv.imread(entry['image'], channel_order='rgb').astype(np.float64)
        colours = np.array(tiny_run_palette, dtype=np.float64)[labels]
        assert overlay.shape == shape + (3, )
        assert np.abs(overlay - (0.5 * image + 0.5 * colours)).max() <= 1.0


def test_list_file_and_bad_inputs(tiny_run, tmp_path):
    _, _, images = tiny_run
    listing = images / 'list.txt'
    listing.write_text('# two images\ncolour.png\n\n' + str(images / 'sub' / 'gray.png') + '\n')
    assert infer.collect_inputs(str(listing)) == {'colour': images / 'colour.png',
                                                  'gray': images / 'sub' / 'gray.png'}
    listing.write_text('missing.png\n')
    with pytest.raises(FileNotFoundError, match='list.txt lists missing.png, which is not a file'):
        infer.collect_inputs(str(listing))
    with pytest.raises(FileNotFoundError, match='nothing not found: expected an image or video '
                       'file, a folder, or a list file'):
        infer.collect_inputs(str(tmp_path / 'nothing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='holds no image'):
        infer.collect_inputs(str(tmp_path / 'empty'))


def test_unreadable_and_tiny_images_are_named_and_the_run_goes_on(tiny_run, tmp_path, capsys):
    """A folder holding good images and, among them, a text file named .jpg, a truncated JPEG,
    an empty PNG and a 1x1 image: the good ones are written, each bad one gets one line naming
    the file and why, and the run exits with status 1."""
    config, checkpoint, images = tiny_run
    (images / 'a_text.jpg').write_text('not an image\n')
    import cv2
    ok, encoded = cv2.imencode('.jpg', np.random.RandomState(1).randint(
        0, 256, (64, 64, 3), dtype=np.uint8))
    assert ok
    (images / 'b_truncated.jpg').write_bytes(encoded.tobytes()[:100])
    (images / 'c_empty.png').write_bytes(b'')
    mmcv.imwrite(np.zeros((1, 1, 3), np.uint8), str(images / 'd_tiny.png'))
    mmcv.imwrite(np.zeros((32, 33, 3), np.uint8), str(images / 'e_small_enough.png'))
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:
        infer.main([str(config), str(checkpoint), str(images), '--out-dir', str(out)])
    assert info.value.code == 1
    labels = sorted(p.relative_to(out / 'labels').as_posix() for p in (out / 'labels').rglob('*'))
    assert labels == ['colour.png', 'e_small_enough.png', 'sub', 'sub/gray.png']
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines() if line.startswith('  ')]
    assert lines == [
        f'cannot read image {images / "a_text.jpg"} (13 bytes): not a decodable image '
        '(truncated, corrupted, or not an image at all)',
        f'cannot read image {images / "b_truncated.jpg"} (100 bytes): not a decodable image '
        '(truncated, corrupted, or not an image at all)',
        f'cannot read image {images / "c_empty.png"}: the file is empty (0 bytes)',
        f'cannot segment image {images / "d_tiny.png"}: it is 1x1 pixels; both sides must be at '
        'least 32 (the backbones downsample by 32)']
    assert '4 input(s) failed:' in err
