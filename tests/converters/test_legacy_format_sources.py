"""Every converter source reads the legacy (torch < 1.6) format, in which the original projects'
2017-2019 releases were saved: a file saved legacy converts to exactly what the same weights
saved as a zip archive convert to."""
import json
from collections import OrderedDict

import pytest
import torch
from mmengine.registry import DefaultScope

from mmseg_hrplus.converters import convert_file

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

#: source -> the manifest of its key layout (tests/data/manifests), or a builder of the keys
SOURCES = {
    'deeplab-kazuto': 'deeplab-kazuto',
    'bisenet-coincheung': 'bisenet-coincheung',
    'hrnet-imagenet': 'hrnet-imagenet-w18-small-v1',
    'hrnet-seg': 'hrnet-seg-w18-small-v1',
    'torchvision-resnet': None,
}


def torchvision_resnet50_shapes():
    """torchvision's ResNet-50 layout is mmseg's ResNet (v1 stem) plus the classifier."""
    from mmseg.models.backbones import ResNet
    shapes = {key: list(value.shape) for key, value in ResNet(depth=50).state_dict().items()}
    shapes.update({'fc.weight': [1000, 2048], 'fc.bias': [1000]})
    return shapes


def synthesised(shapes):
    generator = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(3)
        else:
            state[key] = torch.rand(shape, generator=generator) + 0.1
    return state


@pytest.mark.parametrize('source', list(SOURCES))
def test_legacy_file_converts_like_the_zip_file(source, repo_root, tmp_path):
    name = SOURCES[source]
    shapes = json.loads((repo_root / 'tests' / 'data' / 'manifests' / f'{name}.json')
                        .read_text()) if name else torchvision_resnet50_shapes()
    shapes = shapes['keys'] if 'keys' in shapes else shapes
    state = synthesised(shapes)
    legacy, archive = tmp_path / 'legacy.pth', tmp_path / 'archive.pth'
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    torch.save(state, archive)
    assert legacy.read_bytes()[:2] == b'\x80\x02' and archive.read_bytes()[:2] == b'PK'
    with DefaultScope.overwrite_default_scope('mmseg'):  # converters that build a model
        from_legacy = convert_file(source, str(legacy)).state_dict
        from_archive = convert_file(source, str(archive)).state_dict
    assert list(from_legacy) == list(from_archive) and len(from_legacy) > 10
    for key, value in from_archive.items():
        assert torch.equal(from_legacy[key], value), key
