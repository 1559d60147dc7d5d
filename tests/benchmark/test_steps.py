"""mmseg_hrplus.benchmark.steps on a tiny HRNet+FCN segmentor: the batch, one inference, one
training step."""
import pytest
import torch

from mmseg_hrplus.benchmark.build import build_model
from mmseg_hrplus.benchmark.steps import infer_fn, logits_of, make_batch, train_step_fn
from tests.helpers.tiny_models import write_tiny_hrnet_fcn_configs

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture
def tiny(tmp_path):
    ours, _ = write_tiny_hrnet_fcn_configs(tmp_path)
    return build_model(str(ours))


def test_make_batch_is_seeded_and_labels_fit_the_head(tiny):
    inputs, samples = make_batch(tiny, (3, 3, 16, 24), seed=4)
    again, samples_again = make_batch(tiny, (3, 3, 16, 24), seed=4)
    assert inputs.shape == (3, 3, 16, 24) and torch.equal(inputs, again)
    assert len(samples) == 3
    for sample, same in zip(samples, samples_again):
        label = sample.gt_sem_seg.data
        assert label.shape == (1, 16, 24) and torch.equal(label, same.gt_sem_seg.data)
        assert 0 <= int(label.min()) and int(label.max()) < 5  # the config's num_classes
        assert sample.metainfo['img_shape'] == sample.metainfo['ori_shape'] == (16, 24)


def test_infer_fn_gives_the_tensor_mode_logits(tiny):
    tiny.eval()
    x = torch.randn(1, 3, 64, 96)
    out = infer_fn(tiny, x)()
    with torch.no_grad():
        assert torch.equal(out, tiny(x, mode='tensor'))
    assert out.shape == (1, 5, 16, 24) and not out.requires_grad
    assert logits_of((out, None)) is out and logits_of([out]) is out and logits_of(out) is out


def test_train_step_updates_the_weights(tiny):
    inputs, samples = make_batch(tiny, (2, 3, 32, 32))
    step = train_step_fn(tiny, inputs, samples)
    weight = tiny.decode_head.conv_seg.weight
    before = weight.detach().clone()
    loss = step()
    assert tiny.training
    assert 0 < loss < 10  # cross entropy over 5 classes starts near log(5) = 1.6
    assert not torch.equal(weight.detach(), before)
    assert weight.grad is not None
