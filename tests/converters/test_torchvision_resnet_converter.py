"""torchvision ResNet keys -> DilatedResNet(stem='v1'), on a synthetic torchvision state dict.

torchvision is not installed (and nothing is downloaded): the state dict is generated from
torchvision's published ResNet layout by tests/helpers/torchvision_resnet.py.
"""
import pytest
import torch

from mmseg_hrplus.converters import convert_file
from mmseg_hrplus.converters.torchvision_resnet import convert_torchvision_resnet
from mmseg_hrplus.models.backbones.dilated_resnet import DilatedResNet
from tests.helpers.torchvision_resnet import torchvision_resnet_state_dict


@pytest.fixture(scope='module')
def tv_r50():
    return torchvision_resnet_state_dict()


def test_converted_resnet50_loads_strictly_with_same_tensors(tv_r50):
    converted = convert_torchvision_resnet(tv_r50)
    assert 'fc.weight' not in converted and 'fc.bias' not in converted
    assert len(converted) == len(tv_r50) - 2
    net = DilatedResNet(depth=50, output_stride=8, stem='v1')
    net.load_state_dict(converted, strict=True)
    loaded = net.state_dict()
    for key, value in converted.items():
        assert torch.equal(loaded[key], value), key
    assert torch.equal(net.layer3[5].conv2.weight, tv_r50['layer3.5.conv2.weight'])


def test_wrapped_prefixed_and_unknown_keys(tv_r50):
    wrapped = {'state_dict': {f'module.{k}': v for k, v in tv_r50.items()}}
    converted = convert_torchvision_resnet(wrapped, prefix='backbone.')
    assert next(iter(converted)) == 'backbone.conv1.weight'
    assert len(converted) == len(tv_r50) - 2
    bad = dict(tv_r50, **{'stem.0.weight': torch.zeros(1), 'layer5.0.conv1.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'2 keys are not part of a torchvision ResNet.*stem\.0'):
        convert_torchvision_resnet(bad)


def test_command_line_round_trip(tmp_path, tv_r50):
    src, dst = tmp_path / 'resnet50-tv.pth', tmp_path / 'converted.pth'
    torch.save(tv_r50, src)
    convert_file('torchvision-resnet', str(src), str(dst))
    out = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(out['state_dict']) == set(tv_r50) - {'fc.weight', 'fc.bias'}
    assert torch.equal(out['state_dict']['layer4.2.bn3.running_var'],
                       tv_r50['layer4.2.bn3.running_var'])
    assert out['meta']['source'] == 'torchvision-resnet'
    assert out['meta']['original_file'] == 'resnet50-tv.pth'
    assert set(out['meta']['dropped_keys']) == {'fc.weight', 'fc.bias'}


def test_converted_file_initialises_through_init_cfg(tmp_path, tv_r50):
    """The configs' route: init_cfg=dict(type='Pretrained', checkpoint=<converted file>)."""
    dst = tmp_path / 'resnet50_torchvision_v1.pth'
    torch.save(convert_torchvision_resnet(tv_r50), dst)
    net = DilatedResNet(depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    net.init_weights()
    for key in ('conv1.weight', 'bn1.running_mean', 'layer4.2.conv3.weight',
                'layer1.0.downsample.1.weight'):
        assert torch.equal(net.state_dict()[key], tv_r50[key]), key
