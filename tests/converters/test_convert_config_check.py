"""``convert.py SOURCE SRC DST --config CONFIG``: the converted weights are loaded strictly into
the config's model (built without loading any checkpoint) before DST is written; weights that do
not fit are an error naming the config, the keys and the shapes, and DST is not written.

The source files are synthesised from the official HRNet W18-Small-v1 manifests
(tests/data/manifests/), the smallest published segmentation model (1.5M parameters)."""
from pathlib import Path

import pytest
import torch
from torch import nn

from mmseg_hrplus.converters import ConversionError
from mmseg_hrplus.converters.config_fit import check_fits_model
from tests.helpers.manifests import manifest, synthesise
from tests.helpers.tools import load_tool, run_tool_main

pytestmark = pytest.mark.usefixtures('one_thread')

SMALL_V1 = 'configs/hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py'
SMALL_V2 = 'configs/hrnet/hrnet_w18_small_v2_cityscapes_official-weights.py'


def convert(argv):
    return run_tool_main(load_tool('model_converters/convert.py'), argv)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp('sources')
    seg = folder / 'hrnet_w18_small_v1_cityscapes_cls19_1024x2048_trainset.pth'
    torch.save(synthesise(manifest('hrnet-seg-w18-small-v1')), seg)
    imagenet = folder / 'hrnet_w18_small_model_v1.pth'
    torch.save(synthesise(manifest('hrnet-imagenet-w18-small-v1')), imagenet)
    return dict(seg=seg, imagenet=imagenet)


def last_line(capsys):
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_fitting_weights_load_strictly_and_are_written(sources, tmp_path, repo_root, capsys):
    config, dst = str(repo_root / SMALL_V1), tmp_path / 'small_v1.pth'
    convert(['hrnet-seg', str(sources['seg']), str(dst), '--config', config])
    assert last_line(capsys) == (f'{config}: all 434 converted tensors load strictly into its '
                                 'model (EncoderDecoder)')
    written = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    assert len(written) == 434
    assert torch.equal(written['decode_head.conv_seg.weight'],
                       torch.load(sources['seg'], weights_only=True)['model.last_layer.3.weight'])


def test_weights_of_another_model_are_refused_and_not_written(sources, tmp_path, repo_root):
    config, dst = str(repo_root / SMALL_V2), tmp_path / 'small_v1.pth'
    with pytest.raises(ConversionError) as info:
        convert(['hrnet-seg', str(sources['seg']), str(dst), '--config', config])
    message = str(info.value)
    assert message.startswith(
        f'{config}: the converted weights do not fit its model (EncoderDecoder): 438 missing '
        'from the weights: backbone.layer1.1.conv1.weight, backbone.layer1.1.bn1.weight, '), message
    assert ('; 351 of another shape: backbone.layer1.0.conv1.weight (32, 64, 1, 1) (expected '
            '(64, 64, 1, 1)), backbone.layer1.0.bn1.weight (32) (expected (64)), ') in message
    assert message.endswith(f' ... (346 more); {dst} was not written')
    assert not dst.exists()


def test_an_imagenet_backbone_is_checked_against_the_backbone(sources, tmp_path, repo_root,
                                                               capsys):
    config = str(repo_root / SMALL_V1)
    convert(['hrnet-imagenet', str(sources['imagenet']), str(tmp_path / 'b.pth'),
             '--config', config])
    assert last_line(capsys) == (f'{config}: all 426 converted tensors load strictly into its '
                                 'backbone (HRNet)')


def test_a_config_that_does_not_exist_is_named_before_converting(sources, tmp_path, capsys):
    with pytest.raises(SystemExit):
        convert(['hrnet-seg', str(sources['seg']), str(tmp_path / 'x.pth'),
                 '--config', 'configs/nope.py'])
    assert "--config 'configs/nope.py': no such config file" in capsys.readouterr().err
    assert not (tmp_path / 'x.pth').exists()


class Segmentor(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(1, 2, 1)
        self.head = nn.Linear(2, 3)


def test_missing_and_extra_keys_are_named():
    state = Segmentor().state_dict()
    state['head.extra'] = torch.zeros(1)
    del state['head.bias']
    with pytest.raises(ConversionError, match=(
            r'^cfg\.py: the converted weights do not fit its model \(Segmentor\): 1 missing from '
            r'the weights: head\.bias; 1 not in the model: head\.extra$')):
        check_fits_model(state, Segmentor(), 'cfg.py')
    backbone_only = {'weight': torch.ones(2, 1, 1, 1), 'bias': torch.zeros(2)}
    model = Segmentor()
    assert check_fits_model(backbone_only, model, 'cfg.py') == (
        'cfg.py: all 2 converted tensors load strictly into its backbone (Conv2d)')
    assert torch.equal(model.backbone.weight, torch.ones(2, 1, 1, 1))


def test_an_mmseg_zoo_file_fits_our_config_unchanged(tmp_path, repo_root, capsys):
    """The zoo's promise for mmseg's fcn_hr18s files: the state dict of mmseg's own
    fcn_hr18s_4xb2-80k_cityscapes model (full width, random weights), saved as mmseg saves it,
    passes through the ``mmengine`` source into configs/hrnet/hrnet_w18_small_cityscapes.py."""
    import mmseg
    from mmengine.config import Config

    from mmseg_hrplus.engine.runner import build_config_model, drop_checkpoint_loading
    cfg = Config.fromfile(str(Path(mmseg.__file__).parent / '.mim' / 'configs' / 'hrnet' /
                              'fcn_hr18s_4xb2-80k_cityscapes-512x1024.py'))
    drop_checkpoint_loading(cfg.model)
    state = build_config_model(cfg).state_dict()
    src = tmp_path / 'fcn_hr18s_512x1024_80k_cityscapes_20200601_202700-1462b75d.pth'
    torch.save({'state_dict': state, 'meta': {'iter': 80000, 'CLASSES': ('road', 'sidewalk')}},
               src)
    config = str(repo_root / 'configs' / 'hrnet' / 'hrnet_w18_small_cityscapes.py')
    convert(['mmengine', str(src), str(tmp_path / 'out.pth'), '--config', config])
    assert last_line(capsys) == (f'{config}: all {len(state)} converted tensors load strictly '
                                 'into its model (EncoderDecoder)')
