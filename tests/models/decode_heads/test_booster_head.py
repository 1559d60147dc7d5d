"""BoosterHead: mmseg FCNHead layout and outputs, training only inside an EncoderDecoder (hooks
never fire in predict/test_step; inference FLOPs equal those without auxiliary heads)."""
from pathlib import Path

import pytest
import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample

from mmseg_hrplus.models.backbones.bisenetv2 import BiSeNetV2
from mmseg_hrplus.models.decode_heads.booster_head import BoosterHead
from mmseg_hrplus.models.utils import FeatureSpec

CONFIG = (Path(__file__).resolve().parents[3] / 'configs' / 'bisenetv2'
          / 'bisenetv2_cityscapes-1024x1024.py')


def build_segmentor(with_boosters=True):
    cfg = Config.fromfile(str(CONFIG))
    if not with_boosters:
        cfg.model.pop('auxiliary_head')
    with DefaultScope.overwrite_default_scope('mmseg'):  # mmseg's data preprocessor
        return revert_sync_batchnorm(MMSEG_MODELS.build(cfg.model))


def data_batch(n, h=64, w=128, with_labels=False):
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             pad_shape=(h, w)))
        if with_labels:
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, h, w)))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


def test_two_convs_have_mmseg_fcn_layout_and_outputs():
    ref = FCNHead(in_channels=64, channels=256, num_convs=2, concat_input=False, in_index=4,
                  num_classes=19, norm_cfg=dict(type='BN')).eval()
    ours = BoosterHead(in_channels=64, channels=256, num_convs=2, in_index=4,
                       num_classes=19).eval()
    ours.load_state_dict(ref.state_dict())  # strict: same keys and shapes
    feats = [None] * 4 + [torch.randn(2, 64, 5, 7)]
    with torch.no_grad():
        assert torch.equal(ours(feats), ref(feats))
    assert tuple(ours(feats).shape) == (2, 19, 5, 7)


def test_paper_default_is_one_conv():
    head = BoosterHead(in_channels=16, channels=32, in_index=2, num_classes=19)
    assert len(head.convs) == 1
    assert sum(p.numel() for p in head.parameters()) == (
        16 * 32 * 9 + 2 * 32 + 32 * 19 + 19)


def test_check_inputs_on_the_four_bisenetv2_taps():
    specs = BiSeNetV2().out_specs
    for index, channels, stride in [(2, 16, 4), (3, 32, 8), (4, 64, 16), (5, 128, 32)]:
        head = BoosterHead(in_channels=channels, channels=8, in_index=index, num_classes=19)
        assert head.check_inputs(specs) == (FeatureSpec(channels, stride), )
    with pytest.raises(ValueError, match=r'in_channels=\[16\] \(in_index=\[3\]\) does not match'):
        BoosterHead(in_channels=16, channels=8, in_index=3, num_classes=19).check_inputs(specs)


def test_boosters_run_in_loss_but_never_in_predict_or_test_step():
    model = build_segmentor()
    calls = []
    for i, head in enumerate(model.auxiliary_head):
        assert isinstance(head, BoosterHead)
        # mmseg calls head.forward directly (no hook fires on the head): hook its layers.
        for layer in head.modules():
            if layer is not head:
                layer.register_forward_hook(lambda *_, i=i: calls.append(i))

    model.eval()
    with torch.no_grad():
        results = model.test_step(data_batch(1))
        assert tuple(results[0].pred_sem_seg.data.shape) == (1, 64, 128)
        inputs = torch.rand(1, 3, 64, 128)
        model.predict(inputs)
        model(inputs, mode='tensor')
    assert calls == []

    model.train()
    # Not through the data preprocessor: in training it pads to the config's 1024x1024 crop.
    samples = data_batch(2, with_labels=True)['data_samples']
    losses = model.loss(torch.rand(2, 3, 64, 128), samples)
    assert sorted(set(calls)) == [0, 1, 2, 3]
    assert {f'aux_{i}.loss_ce' for i in range(4)} <= set(losses)


def test_inference_flops_equal_without_boosters():
    model = build_segmentor().eval()
    booster_params = sum(p.numel() for p in model.auxiliary_head.parameters())
    inputs = torch.rand(1, 3, 64, 128)
    with_boosters = get_model_complexity_info(model, inputs=inputs, show_table=False,
                                              show_arch=False)
    model.auxiliary_head = None  # what mmseg's tools/analysis_tools/get_flops.py does
    without = get_model_complexity_info(model, inputs=inputs, show_table=False,
                                        show_arch=False)
    assert with_boosters['flops'] == without['flops'] > 0
    assert with_boosters['params'] - without['params'] == booster_params > 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=(16, 32)), r'in_channels must be an int >= 1, got \(16, 32\)'),
    (dict(channels=0), r'channels must be an int >= 1, got 0'),
    (dict(in_index=(2, 3)), r'in_index must be one int'),
    (dict(num_convs=0), r'num_convs must be an int >= 1, got 0'),
    (dict(kernel_size=2), r'kernel_size must be odd'),
    (dict(input_transform='resize_concat'), r'input_transform must be None'),
])
def test_bad_arguments_raise_at_build(kwargs, match):
    args = dict(in_channels=16, channels=16, in_index=2, num_classes=19)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        BoosterHead(**args)
