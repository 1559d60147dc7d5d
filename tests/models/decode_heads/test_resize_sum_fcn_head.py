"""ResizeSumFCNHead: FCNHead's resize_concat HRNetV2 head with the first 1x1 conv per stream;
same state dict, same outputs and gradients up to rounding, in train and eval mode."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_hrplus.models.decode_heads import ResizeSumFCNHead
from tests.helpers.float_bounds import (SHALLOW, assert_close_relative, float32_bound,
                                        rounding_growth)

pytestmark = pytest.mark.usefixtures('one_thread')
WIDTHS = [4, 8, 16, 32]
# Weight gradients sum over the pixels (2 x 20 x 28) instead of the channels, two layers deep.
GRADIENT_BOUND = float32_bound(rounding_growth(2 * 20 * 28, depth=2))


def _heads(**overrides):
    init_default_scope('mmseg')
    cfg = dict(in_channels=WIDTHS, in_index=(0, 1, 2, 3), channels=sum(WIDTHS),
               input_transform='resize_concat', kernel_size=1, num_convs=1,
               concat_input=False, dropout_ratio=-1, num_classes=5,
               norm_cfg=dict(type='BN'), align_corners=False)
    cfg.update(overrides)
    ref = MODELS.build(dict(type='FCNHead', **cfg))
    ours = MODELS.build(dict(type='mmseg_hrplus.ResizeSumFCNHead', **cfg))
    assert isinstance(ours, ResizeSumFCNHead)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def _streams(size=(20, 28), batch=2):
    torch.manual_seed(0)
    h, w = size
    return [torch.randn(batch, c, -(-h // 2**i), -(-w // 2**i), requires_grad=True)
            for i, c in enumerate(WIDTHS)]


@pytest.mark.parametrize('size', [(20, 28), (19, 27)])  # even and odd stream sizes
@pytest.mark.parametrize('num_convs', [1, 2])
def test_train_mode_outputs_gradients_and_bn_stats_equal_fcn_head(size, num_convs):
    ref, ours = _heads(num_convs=num_convs)
    xs = _streams(size)
    out_ref, out = ref(xs), ours(xs)
    assert out.shape == out_ref.shape == (2, 5, *size)
    # one 1x1 conv over the concatenated resized streams vs per-stream convs resized and summed
    assert_close_relative(out, out_ref, SHALLOW, 'train-mode logits')
    grads_ref = torch.autograd.grad(out_ref.square().sum(), xs + list(ref.parameters()))
    grads = torch.autograd.grad(out.square().sum(), xs + list(ours.parameters()))
    for g, e in zip(grads, grads_ref):
        assert_close_relative(g, e, GRADIENT_BOUND, 'gradient')
    for (name, b), b_ref in zip(ours.named_buffers(), ref.buffers()):
        if b.dtype.is_floating_point:
            assert_close_relative(b, b_ref, SHALLOW, name)


def test_eval_mode_equals_fcn_head():
    ref, ours = _heads()
    ref.eval(), ours.eval()
    xs = [x.detach() for x in _streams((33, 45), batch=1)]
    with torch.no_grad():
        assert_close_relative(ours(xs), ref(xs), SHALLOW, 'eval-mode logits')


def test_other_settings_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"input_transform=None \(allowed: 'resize_concat'\)"):
        _heads(input_transform=None, in_channels=4, in_index=0, channels=4)
    with pytest.raises(ValueError, match=r'kernel_size=3 \(allowed: 1\)'):
        _heads(kernel_size=3)
    with pytest.raises(ValueError, match=r'concat_input=True \(allowed: False\)'):
        _heads(concat_input=True)
    # weight standardisation would be bypassed by the per-stream F.conv2d
    with pytest.raises(ValueError, match=r"conv_cfg=\{'type': 'ConvWS'\}, a ConvWS2d first "
                       r'conv \(allowed: None, a plain nn.Conv2d\)'):
        _heads(conv_cfg=dict(type='ConvWS'))
    ref, ours = _heads()
    with pytest.raises(ValueError, match=r'expects streams of \[4, 8, 16, 32\] channels'):
        ours([torch.zeros(1, 4, 8, 8), torch.zeros(1, 8, 4, 4), torch.zeros(1, 16, 2, 2),
              torch.zeros(1, 31, 1, 1)])
