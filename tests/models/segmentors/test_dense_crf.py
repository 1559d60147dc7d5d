"""The dense CRF (DeepLabv2's third part): the refiner, and WithDenseCRF on any segmentor.

Needs the optional package pydensecrf2 (``pip install -e .[crf]``); those tests are skipped with
that reason when it is not importable. The error for a missing package is tested without it.
"""
import sys

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.structures import SegDataSample

from mmseg_hrplus.models.postprocess import DenseCRF
from mmseg_hrplus.models.segmentors import enable_dense_crf
from tests.helpers.float_bounds import assert_close_relative, float32_bound, rounding_growth

pytestmark = pytest.mark.usefixtures('one_thread')

try:
    import pydensecrf.densecrf as dcrf
    import pydensecrf.utils as dcrf_utils
    HAVE_CRF = True
except ImportError:
    HAVE_CRF = False
needs_crf = pytest.mark.skipif(not HAVE_CRF, reason='pydensecrf2 is not installed '
                                                     '(pip install -e .[crf])')

VOC_CRF = dict(iterations=10, gaussian_sxy=1, gaussian_weight=3, bilateral_sxy=67,
               bilateral_srgb=3, bilateral_weight=4)


def library_call(image, probs, p=VOC_CRF):
    """The library used directly, as DeepLabv2's users call it."""
    c, h, w = probs.shape
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.ascontiguousarray(dcrf_utils.unary_from_softmax(probs)))
    d.addPairwiseGaussian(sxy=p['gaussian_sxy'], compat=p['gaussian_weight'])
    d.addPairwiseBilateral(sxy=p['bilateral_sxy'], srgb=p['bilateral_srgb'],
                           rgbim=np.ascontiguousarray(image), compat=p['bilateral_weight'])
    return np.array(d.inference(p['iterations'])).reshape(c, h, w)


@needs_crf
def test_refined_probabilities_equal_the_library_call():
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (37, 53, 3)).astype(np.uint8)
    logits = torch.from_numpy(rng.randn(4, 37, 53).astype(np.float32) * 2)
    probs = F.softmax(logits, dim=0).numpy()
    ours = DenseCRF(**VOC_CRF)(image, probs)
    assert ours.shape == (4, 37, 53) and ours.dtype == np.float32
    assert np.array_equal(ours, library_call(image, probs))
    assert np.allclose(ours.sum(0), 1, atol=1e-5)
    assert np.abs(ours - probs).max() > 0.1  # it did something


@needs_crf
def test_crf_moves_the_boundary_to_image_edges_on_the_real_frame(cityscapes_sample):
    image = mmcv.imread(str(next(cityscapes_sample.rglob('*_leftImg8bit.png'))))
    labels = mmcv.imread(str(next(cityscapes_sample.rglob('*_labelTrainIds.png'))),
                         flag='unchanged')
    h, w = labels.shape
    # "sky" (train id 10) as a network at 1/8 would see it: block-averaged, bilinearly upsampled
    sky = torch.from_numpy((labels == 10).astype(np.float32))[None, None]
    coarse = F.interpolate(F.avg_pool2d(sky, 8), size=(h, w), mode='bilinear',
                           align_corners=False)[0, 0]
    p = 0.1 + 0.8 * coarse
    probs = torch.stack([1 - p, p]).numpy()
    refined = DenseCRF(**VOC_CRF)(image, probs)
    before, after = probs.argmax(0), refined.argmax(0)
    gradient = np.abs(np.diff(image.astype(np.float64), axis=1)).sum(2)

    def edge_strength(pred):  # mean colour step where the prediction changes class
        return gradient[np.diff(pred, axis=1) != 0].mean()

    assert (before != after).sum() > 50  # 67 pixels change
    # measured 96.1 -> 114.7 (the frame's mean step is 27.4)
    assert edge_strength(after) > 1.1 * edge_strength(before)
    valid = labels != 255
    truth = labels == 10
    assert (after == truth)[valid].mean() > (before == truth)[valid].mean()  # 0.9952 -> 0.9963


def tiny_segmentor(segmentor_type, crf=None, **extra):
    cfg = dict(
        type='mmseg_hrplus.WithDenseCRF', segmentor_type=segmentor_type, crf=crf,
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type='mmseg_hrplus.DilatedResNet', depth=50, stem_channels=8,
                      base_channels=4, out_indices=(3, )),
        test_cfg=dict(mode='whole'), **extra)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = SEG_MODELS.build(ConfigDict(cfg))
    model.init_weights()
    return model.eval()


FCN_HEAD = dict(type='FCNHead', in_channels=128, channels=8, num_convs=1, num_classes=3,
                concat_input=False)
ASPP_HEAD = dict(type='mmseg_hrplus.ASPPHead', in_channels=128, num_classes=3)


@needs_crf
@pytest.mark.parametrize('segmentor_type, head, extra', [
    ('EncoderDecoder', FCN_HEAD, {}),
    ('mmseg_hrplus.MSCEncoderDecoder', ASPP_HEAD, dict(msc_scales=(1.0, 0.75, 0.5))),
])
def test_with_dense_crf_refines_any_segmentor(segmentor_type, head, extra):
    params = dict(VOC_CRF, iterations=5, bilateral_sxy=10)
    model = tiny_segmentor(segmentor_type, crf=dict(enabled=True, **params), decode_head=head,
                           **extra)
    plain = tiny_segmentor(segmentor_type, crf=dict(enabled=False), decode_head=head, **extra)
    plain.load_state_dict(model.state_dict())  # same keys: checkpoints load unchanged
    assert type(plain).__name__ == segmentor_type.split('.')[-1]
    assert type(model).__name__ == type(plain).__name__ + 'WithDenseCRF'
    assert isinstance(model, type(plain))

    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    image[:, :, :28] //= 4  # a dark half: an edge for the colour kernel
    meta = dict(img_shape=(40, 56), ori_shape=(40, 56))
    batch = dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)])
    with torch.no_grad():
        (ref, ) = plain.test_step(batch)
        (out, ) = model.test_step(batch)
    probs = F.softmax(ref.seg_logits.data, dim=0).numpy()
    # the CRF sees the image as the network was fed: here RGB (bgr_to_rgb=True)
    fed = image.flip(0).permute(1, 2, 0).numpy()
    expected = library_call(np.ascontiguousarray(fed), probs, params)
    # softmax(log p) gives p back up to the rounding of log, exp, the sum over the 3 classes
    # and the division
    assert_close_relative(F.softmax(out.seg_logits.data, dim=0).numpy(), expected,
                          float32_bound(rounding_growth(3 + 3)), 'softmax of the CRF logits')
    assert torch.equal(out.pred_sem_seg.data[0], torch.from_numpy(expected.argmax(0)))


def test_enable_dense_crf_and_disabled_build():
    cfg = dict(type='EncoderDecoder', backbone=dict(type='X'))
    wrapped = enable_dense_crf(cfg)
    assert wrapped == dict(type='mmseg_hrplus.WithDenseCRF', segmentor_type='EncoderDecoder',
                           crf=dict(enabled=True), backbone=dict(type='X'))
    again = enable_dense_crf(dict(wrapped, crf=dict(enabled=False, iterations=3)))
    assert again['crf'] == dict(enabled=True, iterations=3)
    model = tiny_segmentor('EncoderDecoder', crf=dict(enabled=False), decode_head=FCN_HEAD)
    assert type(model).__name__ == 'EncoderDecoder' and not hasattr(model, 'dense_crf')


def test_missing_package_names_the_extra(monkeypatch):
    for name in ('pydensecrf', 'pydensecrf.densecrf', 'pydensecrf.utils'):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install -e \.\[crf\]'):
        DenseCRF()
    with pytest.raises(ImportError, match='pydensecrf2'):
        tiny_segmentor('EncoderDecoder', crf=dict(enabled=True), decode_head=FCN_HEAD)


@pytest.mark.parametrize('bad', [dict(iterations=0), dict(bilateral_srgb=0),
                                 dict(gaussian_weight=-1)])
def test_bad_parameters(bad):
    if not HAVE_CRF:
        pytest.skip('pydensecrf2 is not installed (pip install -e .[crf])')
    with pytest.raises(ValueError, match=next(iter(bad))):
        DenseCRF(**bad)
