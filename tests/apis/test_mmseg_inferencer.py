"""mmseg's MMSegInferencer with our config and a checkpoint of our model (issue 15): it builds
our HRNet through the config's custom_imports, reads the checkpoint through our safe reader
(a crafted one is refused), takes the checkpoint's classes and palette, and predicts exactly
what our own inference path (segment_images, tools/infer.py) does on the same image. Nothing
in our package needed changing for it."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tests.helpers.crafted_pickles import RunsCode
from mmengine.config import Config
from mmseg.apis import MMSegInferencer, init_model

from mmseg_hrplus.apis.inference import segment_images
from mmseg_hrplus.models.backbones import HRNet
from tests.helpers.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/quickstart/hrnet_w18s_synthetic.py'
CLASSES = [f'k{i}' for i in range(19)]
PALETTE = [[(37 * i) % 256, (91 * i) % 256, (151 * i) % 256] for i in range(19)]
pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """The quickstart model (HRNet-W18-small + FCN, 19 classes), randomly initialised with the
    classifier scaled up, saved as a checkpoint with our classes and palette; a 64x128 image."""
    root = tmp_path_factory.mktemp('inferencer')
    torch.manual_seed(0)
    model = init_model(Config.fromfile(str(CONFIG)), None, device='cpu')
    torch.nn.init.normal_(model.decode_head.conv_seg.weight, std=10.0)
    checkpoint = root / 'quickstart.pth'
    torch.save(dict(meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE)),
                    state_dict=model.state_dict()), checkpoint)
    image = root / 'frame.png'
    cv2.imwrite(str(image), np.random.RandomState(0).randint(0, 256, (64, 128, 3), np.uint8))
    return dict(root=root, checkpoint=checkpoint, image=image)


# the config's visualizer (mmseg's default runtime) has a LocalVisBackend without save_dir
@pytest.mark.filterwarnings('ignore:Failed to add .*LocalVisBackend:UserWarning')
def test_inferencer_predicts_what_our_inference_does(saved):
    inferencer = MMSegInferencer(model=str(CONFIG), weights=str(saved['checkpoint']),
                                 device='cpu')
    assert isinstance(inferencer.model.backbone, HRNet)
    assert inferencer.model.dataset_meta == dict(classes=CLASSES, palette=PALETTE)
    theirs = inferencer(str(saved['image']), return_datasamples=True)
    assert theirs.pred_sem_seg.data.shape == (1, 64, 128)
    assert theirs.seg_logits.data.shape == (19, 64, 128)

    model = init_model(str(CONFIG), str(saved['checkpoint']), device='cpu')
    ours = segment_images(model, saved['image'])
    assert torch.equal(theirs.seg_logits.data, ours.seg_logits.data)
    assert torch.equal(theirs.pred_sem_seg.data, ours.pred_sem_seg.data)
    assert len(torch.unique(ours.pred_sem_seg.data)) > 2

    # the files both write: mmseg's pred PNG and tools/infer.py's label PNG are the same labels
    out = inferencer(str(saved['image']), out_dir=str(saved['root'] / 'mmseg_out'))
    assert out['predictions'].shape == (64, 128)
    pred_files = sorted((saved['root'] / 'mmseg_out' / 'pred').iterdir())
    assert [f.name for f in pred_files] == ['00000000_pred.png']
    pred_png = cv2.imread(str(pred_files[0]), cv2.IMREAD_UNCHANGED)
    infer = load_tool('infer.py')
    infer.main([str(CONFIG), str(saved['checkpoint']), str(saved['image']), '--out-dir',
                str(saved['root'] / 'our_out')])
    label_png = cv2.imread(str(saved['root'] / 'our_out' / 'labels' / 'frame.png'),
                           cv2.IMREAD_UNCHANGED)
    expected = ours.pred_sem_seg.data[0].numpy()
    for labels in (out['predictions'], pred_png, label_png):
        np.testing.assert_array_equal(labels, expected)
    assert (saved['root'] / 'mmseg_out' / 'vis' / 'frame.png').is_file()


def test_inferencer_refuses_a_crafted_checkpoint_in_a_fresh_process(saved):
    """A fresh Python that never imports mmseg_hrplus itself: MMSegInferencer imports it through
    the config's custom_imports, which puts our safe reader under mmengine's CheckpointLoader,
    so the crafted file is refused before anything in it runs; our checkpoint still loads."""
    marker = saved['root'] / 'marker'
    evil = saved['root'] / 'evil.pth'
    torch.save({'meta': RunsCode(marker), 'state_dict': {}}, evil)
    script = f"""
import sys
from mmseg.apis import MMSegInferencer
assert 'mmseg_hrplus' not in sys.modules
try:
    MMSegInferencer(model={str(CONFIG)!r}, weights={str(evil)!r}, device='cpu')
except Exception as err:
    print('REFUSED', type(err).__name__, err)
result = MMSegInferencer(model={str(CONFIG)!r}, weights={str(saved['checkpoint'])!r},
                         device='cpu')({str(saved['image'])!r})
print('SHAPE', result['predictions'].shape)
"""
    env = dict(os.environ, OMP_NUM_THREADS='1')  # a 64x128 image: one thread is quicker
    done = subprocess.run([sys.executable, '-c', script], cwd=saved['root'], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(('REFUSED', 'SHAPE'))]
    assert lines == [
        f'REFUSED UnsafeCheckpointError refused checkpoint {evil}: the file asks for '
        '`posix.system`, which is outside the allow-list; nothing was executed (load only '
        'files you trust)',
        'SHAPE (64, 128)']
    assert not marker.exists()
