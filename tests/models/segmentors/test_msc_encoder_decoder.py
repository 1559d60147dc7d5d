"""MSCEncoderDecoder: DeepLabv2's max-fused multi-scale test, as kazuto1011/deeplab-pytorch's MSC.

The reference below re-derives that project's eval-mode arithmetic independently: the image is
scaled with ``interpolate(scale_factor=s)`` (bilinear, align_corners=False), each scale's
logits are resized to the scale-1 logit grid, and the maximum is taken there, before the final
resize to the image. (Against the original code itself, with the converted ResNet-101, the
logits were equal bit for bit; measured outside the repository.)
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS as SEG_MODELS

pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_deeplabv2(scales=(1.0, 0.75, 0.5)):
    cfg = dict(
        type='mmseg_hrplus.MSCEncoderDecoder',
        msc_scales=scales,
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[104.008, 116.669, 122.675],
                               std=[1.0, 1.0, 1.0]),
        backbone=dict(type='mmseg_hrplus.DilatedResNet', depth=50, stem_channels=8,
                      base_channels=4, out_indices=(3, ), style='caffe',
                      stem_pool_ceil_mode=True),
        decode_head=dict(type='mmseg_hrplus.ASPPHead', in_channels=128, num_classes=5,
                         init_cfg=dict(type='Normal', std=0.3, bias=0.1, layer='Conv2d')),
        test_cfg=dict(mode='whole'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = SEG_MODELS.build(ConfigDict(cfg))
    model.init_weights()
    with torch.no_grad():  # non-trivial BN statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def reference_msc(base, x, scales=(0.5, 0.75)):
    logits = base(x)
    h, w = logits.shape[2:]
    pyramid = [base(F.interpolate(x, scale_factor=p, mode='bilinear', align_corners=False))
               for p in scales]
    resized = [F.interpolate(p, size=(h, w), mode='bilinear', align_corners=False)
               for p in pyramid]
    return torch.stack([logits] + resized).max(dim=0).values


def test_fused_logits_equal_the_re_derived_msc():
    model = tiny_deeplabv2()
    x = torch.randn(1, 3, 61, 83) * 40  # odd sides: 0.75 gives 45x62, 0.5 gives 30x41

    def base(t):
        return model.decode_head.forward(model.extract_feat(t))

    with torch.no_grad():
        ref = reference_msc(base, x)
        fused = model.fused_logits(x)
        assert fused.shape == (1, 5, 8, 11)
        assert torch.equal(fused, ref)
        metas = [dict(img_shape=(61, 83), ori_shape=(61, 83), pad_shape=(61, 83))]
        full = model.encode_decode(x, metas)
        assert torch.equal(full, F.interpolate(ref, size=(61, 83), mode='bilinear',
                                               align_corners=False))
        # The variants the docstring warns about are measurably different.
        size_based = [base(F.interpolate(x, size=(int(61 * p), int(83 * p)), mode='bilinear',
                                         align_corners=False)) for p in (0.75, 0.5)]
        variant = torch.stack([base(x)] + [F.interpolate(t, size=(8, 11), mode='bilinear',
                                                         align_corners=False)
                                           for t in size_based]).max(0).values
        assert (variant - ref).abs().max() > 1e-3 * ref.abs().max()
        assert not torch.equal(base(x), ref)  # the smaller scales do win somewhere


def test_predict_flow_and_training_are_single_scale_where_they_should_be():
    model = tiny_deeplabv2()
    image = torch.randint(0, 256, (3, 45, 70), dtype=torch.uint8)
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=(45, 70), ori_shape=(45, 70)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
        (result, ) = model.predict(**data)
        expected = F.interpolate(model.fused_logits(data['inputs']), size=(45, 70),
                                 mode='bilinear', align_corners=False)[0]
    assert torch.equal(result.seg_logits.data, expected)
    model.train()
    metas = [dict(img_shape=(45, 70), ori_shape=(45, 70), pad_shape=(45, 70))]
    with torch.no_grad():
        single = model.decode_head.predict(model.extract_feat(data['inputs']), metas,
                                           model.test_cfg)
        assert torch.equal(model.encode_decode(data['inputs'], metas), single)


@pytest.mark.parametrize('scales', [(0.75, 0.5), (), (1.0, 0.0)])
def test_scales_must_include_one(scales):
    with pytest.raises(ValueError, match='msc_scales'):
        tiny_deeplabv2(scales)
