"""Every config's init weights, by name, from a stand-in of the download hosts on 127.0.0.1.

Each config in configs/ reads its init weights in one of three ways, and each is checked:

* by name (``torchvision://resnet101``, ``open-mmlab://msra/hrnetv2_w18``...): the name
  resolves, through the tables our loaders read, to the real host's URL. Then the tables are
  pointed at a local server (``get_torchvision_models``; ``open_mmlab.json`` in
  ``MMENGINE_HOME``, mmengine's own place for user names) that serves a file laid out as the
  real one (torchvision's ResNet keys with its ``fc``; mmseg's HRNet keys with an ImageNet
  classifier) at the real path, named with its own SHA-256 prefix as the real files are. The
  config, narrowed (tests/helpers/config_narrowing.py; DilatedResNet keeps its 101 layers),
  initialises: every backbone weight equals the served one, nothing but the classifier is left
  over, the file sits in our download cache; then it runs its first training iteration with
  its own optimizer;
* a converted file (``load_from`` or ``init_cfg`` naming a local path): the config declares it
  with its command in ``RequireConvertedCheckpointsHook``, and with the file absent a run stops
  before initialising anything, naming the file and the command;
* nothing (trained from scratch).

The full-size backbones are compared with the served layouts on the ``meta`` device (keys and
shapes, no memory), so the narrowed run stands for the real files.
"""
import hashlib
import json
import math
import os.path as osp
import re
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple
from urllib.parse import urlparse

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS, DefaultScope
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmseg.models.backbones import HRNet as MmsegHRNet

from mmseg_hrplus.checkpoint import cached_path_for, loaders_are_ours
from mmseg_hrplus.checkpoint.download import HASH_IN_NAME
from mmseg_hrplus.checkpoint.loaders import resolve_openmmlab, resolve_torchvision
from mmseg_hrplus.converters import source_names
from mmseg_hrplus.engine import MissingConvertedCheckpoint
from mmseg_hrplus.models.backbones.hrnet import arch_to_extra
from tests.helpers.config_narrowing import (BACKBONE_NARROWING, CONFIG_ROOT, TINY_HRNET,
                                            all_configs, build_model, config_id, det_batch,
                                            load_configs, narrow, registry, seg_batch)
from tests.helpers.detector_narrowing import detector_needs, detector_num_classes
from tests.helpers.served_files import serve_directory
from tests.helpers.torchvision_resnet import BLOCKS, random_state_dict, torchvision_resnet_shapes

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]

HOOK = 'RequireConvertedCheckpointsHook'
#: DilatedResNet keeps its depth (the served file has all of resnet101's keys); widths shrink.
NARROW_WIDTHS = dict(stem_channels=8, base_channels=4)
INIT_NARROWING = dict(BACKBONE_NARROWING, DilatedResNet=NARROW_WIDTHS)
#: The real hosts' URLs of the names our configs use (mmengine's tables).
REAL_URLS = {
    'torchvision://resnet101': 'https://download.pytorch.org/models/resnet101-63fe2227.pth',
    'open-mmlab://msra/hrnetv2_w18_small':
        'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w18_small-b5a04e21.pth',
    'open-mmlab://msra/hrnetv2_w18':
        'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w18-00eb2006.pth',
    'open-mmlab://msra/hrnetv2_w32':
        'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w32-dc9eeb4f.pth',
    'open-mmlab://msra/hrnetv2_w40':
        'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w40-ed0b031c.pth',
    'open-mmlab://msra/hrnetv2_w48':
        'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w48-d2186c55.pth',
}
#: Keys of the real files that no segmentation or detection backbone has.
TORCHVISION_CLASSIFIER = {'fc.weight', 'fc.bias'}
HRNET_IMAGENET_CLASSIFIER = {'classifier.weight': (1000, 64), 'classifier.bias': (1000, )}


def config(path: Path) -> Config:
    return LOADED[path]


def declared_files(cfg: Config) -> Dict[str, str]:
    """path -> command of every file the config declares as converted."""
    files = {}
    for hook in cfg.get('custom_hooks') or []:
        if str(hook.get('type', '')).rsplit('.', 1)[-1] == HOOK:
            files.update(hook['files'])
    return files


def checkpoints_read(cfg: Config) -> List[str]:
    """What a run of ``cfg`` reads into its model: the backbone's Pretrained init, load_from."""
    read = []
    init = cfg.model.backbone.get('init_cfg') or {}
    if init.get('type') == 'Pretrained' and init.get('checkpoint'):
        read.append(init['checkpoint'])
    if cfg.model.get('pretrained'):
        read.append(cfg.model.pretrained)
    if cfg.get('load_from'):
        read.append(cfg.load_from)
    return read


def init_kind(path: Path) -> str:
    read = checkpoints_read(config(path))
    if not read:
        return 'scratch'
    return 'named' if all('://' in name for name in read) else 'converted'


CONFIGS = all_configs()
LOADED = load_configs(CONFIGS)
BY_KIND = {kind: [p for p in CONFIGS if init_kind(p) == kind]
           for kind in ('named', 'converted', 'scratch')}
NAMES = sorted({name for p in BY_KIND['named'] for name in checkpoints_read(config(p))})


def test_every_config_is_classified():
    assert sum(len(paths) for paths in BY_KIND.values()) == len(CONFIGS)
    named = {config_id(p) for p in BY_KIND['named']}
    converted = {config_id(p) for p in BY_KIND['converted']}
    assert {'deeplabv2/deeplabv2_r101-d8_cityscapes-512x1024.py', 'hrnet_w48_cityscapes.py',
            'mix/dilated-r101_bga_cityscapes-512x1024.py',
            'mmdet/htc_hrnetv2p-w40_20e_coco.py'} <= named
    assert converted == {
        'bisenetv2/bisenetv2_cityscapes_coincheung-weights.py',
        'deeplabv2/deeplabv2_r101_cocostuff164k_kazuto-weights.py',
        'deeplabv2/deeplabv2_r101_voc12aug_kazuto-weights.py',
        'hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py',
        'hrnet/hrnet_w18_small_v2_cityscapes_official-weights.py',
        'hrnet/hrnet_w48_cityscapes_official-weights.py',
        'mmdet/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od-weights.py'}
    assert set(NAMES) == set(REAL_URLS)


@pytest.mark.parametrize('name', NAMES)
def test_names_resolve_to_the_real_hosts(name):
    resolve = resolve_torchvision if name.startswith('torchvision://') else resolve_openmmlab
    assert resolve(name) == REAL_URLS[name]


# -- the full-size backbones take every weight of the real files' layouts

#: HRNet with fusion_mode='paper' (configs/hrnet/*paper*): the fusion rows that make the new
#: stream of stages 3 and 4 are not in the ImageNet file (they start from the default init), and
#: the file's strided transitions that made that stream in the official network are unused.
PAPER_ROWS_NOT_IN_FILE = re.compile(
    r'^stage2\.\d+\.fuse_layers\.2\.|^stage3\.\d+\.fuse_layers\.3\.')
PAPER_FILE_KEYS_UNUSED = re.compile(r'^transition2\.2\.|^transition3\.3\.')


def expected_gaps(backbone_cfg, ours, theirs) -> Tuple[set, set]:
    """(backbone keys not in the file, file keys the backbone does not use) as documented."""
    if backbone_cfg.get('fusion_mode') != 'paper':
        return set(), set()
    return ({key for key in ours if PAPER_ROWS_NOT_IN_FILE.match(key)},
            {key for key in theirs if PAPER_FILE_KEYS_UNUSED.match(key)})


def shapes_of(state: Dict[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


@lru_cache(maxsize=None)
def full_size_gaps(scope: str, backbone_json: str, name: str) -> Tuple[set, set, list]:
    """Build the backbone at full size on ``meta`` and compare it with the file of ``name``:
    (keys not in the file, file keys unused, keys whose shapes differ). Cached: the mmdet
    configs share four backbones."""
    backbone = json.loads(backbone_json)
    with torch.device('meta'), DefaultScope.overwrite_default_scope(scope):
        ours = shapes_of(registry(scope).build(backbone).state_dict())
        if name.startswith('torchvision://'):
            theirs = torchvision_resnet_shapes(BLOCKS[backbone['depth']])
        else:
            assert name == f'open-mmlab://msra/hrnetv2_{backbone["arch"]}'
            theirs = shapes_of(MmsegHRNet(extra=arch_to_extra(backbone['arch'])).state_dict())
    wrong = [key for key in set(ours) & set(theirs) if ours[key] != theirs[key]]
    return set(ours) - set(theirs), set(theirs) - set(ours), wrong


@pytest.mark.parametrize('path', BY_KIND['named'], ids=config_id)
def test_full_size_backbone_takes_every_weight_of_the_real_layout(path):
    cfg = config(path)
    name, = checkpoints_read(cfg)
    backbone = dict(cfg.model.backbone.to_dict(), init_cfg=None)
    not_in_file, unused, wrong = full_size_gaps(cfg.default_scope,
                                                json.dumps(backbone, sort_keys=True), name)
    assert wrong == []
    expected_missing, expected_unused = expected_gaps(backbone, not_in_file, unused)
    assert not_in_file == expected_missing
    if name.startswith('torchvision://'):
        expected_unused |= TORCHVISION_CLASSIFIER
    assert unused == expected_unused
    if backbone.get('fusion_mode') == 'paper':
        assert len(not_in_file) > 0 and len(unused) > 0


# -- the stand-in hosts

def served_layout(name: str) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of the real file of ``name``, at the narrowed widths."""
    if name.startswith('torchvision://resnet'):
        return torchvision_resnet_shapes(BLOCKS[int(name[len('torchvision://resnet'):])],
                                         **NARROW_WIDTHS)
    if name.startswith('open-mmlab://msra/hrnetv2_'):
        layout = shapes_of(MmsegHRNet(extra=TINY_HRNET).state_dict())
        layout.update(HRNET_IMAGENET_CLASSIFIER)
        return layout
    raise AssertionError(f'no stand-in layout for {name}: add one to served_layout')


def file_name_with_hash(real_url: str, data: bytes) -> str:
    """The real file name with the served content's SHA-256 prefix in place of the real one."""
    real_name = osp.basename(urlparse(real_url).path)
    digest = hashlib.sha256(data).hexdigest()
    return HASH_IN_NAME.sub(lambda m: f'-{digest[:len(m.group(1))]}.', real_name, count=1)


@pytest.fixture(scope='module')
def hosts(tmp_path_factory):
    """Serve a file for every name; point mmengine's tables at it; a fresh hub cache."""
    root = tmp_path_factory.mktemp('hosts')
    served, local_urls = {}, {}
    for seed, name in enumerate(NAMES):
        state = random_state_dict(served_layout(name), seed=seed)
        scratch = root / 'scratch.pth'
        torch.save(state, scratch)
        data = scratch.read_bytes()
        real = urlparse(REAL_URLS[name])
        folder = root / real.netloc / osp.dirname(real.path).lstrip('/')
        folder.mkdir(parents=True, exist_ok=True)
        file_name = file_name_with_hash(REAL_URLS[name], data)
        scratch.rename(folder / file_name)
        served[name] = state
        local_urls[name] = (folder / file_name).relative_to(root).as_posix()
    home = root / 'mmengine_home'
    home.mkdir()
    hub_before = torch.hub.get_dir()
    with serve_directory(root) as base, pytest.MonkeyPatch.context() as patch:
        urls = {name: f'{base}/{path}' for name, path in local_urls.items()}
        (home / 'open_mmlab.json').write_text(json.dumps({
            name[len('open-mmlab://'):]: url for name, url in urls.items()
            if name.startswith('open-mmlab://')}))
        patch.setenv('MMENGINE_HOME', str(home))
        patch.setattr(mmengine_checkpoint, 'get_torchvision_models', lambda: {
            name[len('torchvision://'):]: url for name, url in urls.items()
            if name.startswith('torchvision://')})
        torch.hub.set_dir(str(root / 'hub'))
        try:
            yield SimpleNamespace(served=served, urls=urls)
        finally:
            torch.hub.set_dir(hub_before)


def batch_for(cfg: Config, model) -> dict:
    if cfg.default_scope == 'mmdet':
        return det_batch(detector_num_classes(cfg.model), **detector_needs(cfg.model))
    return seg_batch(model.num_classes)


@pytest.mark.parametrize('path', BY_KIND['named'], ids=config_id)
def test_named_init_downloads_loads_every_backbone_weight_and_trains(hosts, path):
    assert loaders_are_ours()
    name, = checkpoints_read(config(path))
    tiny = narrow(config(path), keep_init=True, backbone_narrowing=INIT_NARROWING)
    assert tiny.model.backbone.init_cfg.checkpoint == name
    model = build_model(tiny)
    model.init_weights()

    served = hosts.served[name]
    loaded = model.backbone.state_dict()
    not_in_file, unused = expected_gaps(tiny.model.backbone, loaded, served)
    assert set(loaded) - set(served) == not_in_file, 'backbone weights the file does not have'
    assert set(served) - set(loaded) == unused | (TORCHVISION_CLASSIFIER if name.startswith(
        'torchvision://') else set(HRNET_IMAGENET_CLASSIFIER))
    differ = [key for key in loaded
              if key not in not_in_file and not torch.equal(loaded[key], served[key])]
    assert differ == [], f'{len(differ)} backbone weights were not loaded: {differ[:5]}'
    assert osp.isfile(cached_path_for(hosts.urls[name])), 'not in our download cache'

    # the first iteration, with the config's own optimizer
    first_conv = next(p for n, p in model.backbone.named_parameters() if n == 'conv1.weight')
    before = first_conv.detach().clone()
    model.train()
    with DefaultScope.overwrite_default_scope(tiny.default_scope):
        optim_wrapper = build_optim_wrapper(model, tiny.optim_wrapper)
        log_vars = model.train_step(batch_for(tiny, model), optim_wrapper)
    assert math.isfinite(float(log_vars['loss'].detach()))
    if first_conv.requires_grad:
        assert not torch.equal(first_conv.detach(), before), 'the step left conv1 unchanged'


def test_documented_train_run_initialises_from_the_name(hosts, tmp_path):
    """The DeepLabv2 Cityscapes config through mmengine's Runner (what tools/train.py runs),
    narrowed, one iteration: the frozen BN of the trained model holds the served values."""
    path = CONFIG_ROOT / 'deeplabv2' / 'deeplabv2_r101-d8_cityscapes-512x1024.py'
    tiny = narrow(config(path), keep_init=True, backbone_narrowing=INIT_NARROWING)
    batch = seg_batch(tiny.model.decode_head.num_classes)
    runner = Runner(
        model=tiny.model, work_dir=str(tmp_path), default_scope=tiny.default_scope,
        experiment_name='init_weights_by_name_deeplabv2',
        train_dataloader=torch.utils.data.DataLoader([batch], batch_size=1,
                                                     collate_fn=lambda items: items[0]),
        train_cfg=dict(by_epoch=False, max_iters=1), optim_wrapper=tiny.optim_wrapper,
        default_hooks=dict(checkpoint=None, logger=None), log_level='WARNING')
    model = runner.train()
    assert runner.iter == 1
    served = hosts.served['torchvision://resnet101']
    for key in ('bn1.weight', 'bn1.running_var', 'layer3.22.bn2.bias', 'layer4.2.bn3.weight'):
        assert torch.equal(model.backbone.state_dict()[key], served[key]), key
    conv = model.backbone.state_dict()['layer4.2.conv3.weight']
    assert conv.shape == served['layer4.2.conv3.weight'].shape
    assert not torch.equal(conv, served['layer4.2.conv3.weight'])  # trained one step


# -- converted files: declared with their command, named when absent

@pytest.mark.parametrize('path', BY_KIND['converted'], ids=config_id)
def test_converted_file_is_declared_with_a_working_command(path):
    cfg = config(path)
    files = declared_files(cfg)
    local = [name for name in checkpoints_read(cfg) if '://' not in name]
    assert local and set(local) <= set(files), f'{config_id(path)} reads undeclared {local}'
    for target, command in files.items():
        words = command.split()
        assert words[:2] == ['python', 'tools/model_converters/convert.py'], command
        assert words[2] in source_names(), f'{words[2]!r} is not a converter source'
        assert words[-1] == target, f'the command writes {words[-1]}, not {target}'


@pytest.mark.parametrize('path', BY_KIND['converted'], ids=config_id)
def test_absent_converted_file_stops_the_run_naming_its_command(path, tmp_path, monkeypatch):
    cfg = config(path)
    monkeypatch.chdir(tmp_path)  # relative paths: nothing under checkpoints/ here
    tiny = narrow(cfg, keep_init=True)
    model = build_model(tiny)
    hooks = [HOOKS.build(hook) for hook in tiny.custom_hooks
             if str(hook['type']).endswith(HOOK)]
    runner = SimpleNamespace(model=model, _load_from=tiny.get('load_from'))
    with pytest.raises(MissingConvertedCheckpoint) as info:
        for hook in hooks:
            hook.before_run(runner)
    message = str(info.value)
    for target, command in declared_files(cfg).items():
        assert f'  {target}: made by\n    {command}' in message
    assert message.startswith('1 converted checkpoint(s) this config starts from are absent')


@pytest.mark.parametrize('path', BY_KIND['scratch'], ids=config_id)
def test_scratch_configs_read_nothing(path):
    assert checkpoints_read(config(path)) == [] and declared_files(config(path)) == {}


def test_served_names_carry_their_own_hash():
    """The stand-in files are verified as the real ones are: by the hash in their name."""
    name = file_name_with_hash(REAL_URLS['torchvision://resnet101'], b'abc')
    assert name == f'resnet101-{hashlib.sha256(b"abc").hexdigest()[:8]}.pth'
    assert re.fullmatch(r'resnet101-[0-9a-f]{8}\.pth', name)
