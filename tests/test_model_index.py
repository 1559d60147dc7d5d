"""model-index.yml and the metafiles (mim's format): every Import and Config exists, every
config of the families has one entry, the parameter counts are those of the built models, and
every ``Weights`` link is an http(s) URL of the published-files table for that config."""
import glob
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ('hrnet', 'deeplabv2', 'bisenetv2', 'mmdet')


def load_models():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    assert sorted(index) == ['Import']
    models, collections = [], {}
    for entry in index['Import']:
        path = REPO / entry
        assert path.is_file(), f'model-index.yml imports {entry}, which does not exist'
        meta = yaml.safe_load(path.read_text())
        for collection in meta['Collections']:
            assert collection['Name'] not in collections, collection['Name']
            assert {'Title', 'URL'} <= set(collection['Paper'])
            assert (REPO / collection['README']).is_file()
            collections[collection['Name']] = collection
        models += meta['Models']
    return models, collections


MODELS, COLLECTIONS = load_models()


def test_imports_cover_every_family_and_configs_exist():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    assert index['Import'] == [f'configs/{f}/metafile.yaml' for f in FAMILIES]
    names = [m['Name'] for m in MODELS]
    assert len(names) == len(set(names)), 'model names must be unique'
    for model in MODELS:
        assert (REPO / model['Config']).is_file(), f"{model['Name']}: {model['Config']} missing"
        assert Path(model['Config']).stem == model['Name']
        assert model['In Collection'] in COLLECTIONS
        assert {'Training Data', 'Parameters (M)'} <= set(model['Metadata'])
    listed = {m['Config'] for m in MODELS}
    expected = {'configs/hrnet_w48_cityscapes.py'} | {
        str(Path(p).relative_to(REPO)) for f in FAMILIES
        for p in glob.glob(str(REPO / 'configs' / f / '*.py'))}
    assert listed == expected


@pytest.mark.parametrize('model', MODELS, ids=[m['Name'] for m in MODELS])
def test_parameter_counts_are_the_configs(model):
    from mmseg_hrplus.benchmark.flops import build_inference_model
    with torch.device('meta'):  # shapes only: fast, no memory
        built = build_inference_model(Config.fromfile(str(REPO / model['Config'])))
    count = sum(p.numel() for p in built.parameters())
    assert model['Metadata']['Parameters (M)'] == round(count / 1e6, 4)


def weights_entries(node):
    """Every mapping holding a ``Weights`` key, at any depth (``Converted From``, ...)."""
    if isinstance(node, dict):
        if 'Weights' in node:
            yield node
        for value in node.values():
            yield from weights_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from weights_entries(value)


def test_weights_links_are_the_published_files_of_the_config():
    """A top-level ``Weights`` is a file that loads unchanged into the config (mmseg's zoo);
    ``Converted From`` names the ``File``, its link, and the command with ``--config``."""
    from mmseg_hrplus.converters.published import PUBLISHED_FILES
    by_url = {f.url: f for f in PUBLISHED_FILES.values()}
    seen = 0
    for model in MODELS:
        for entry in weights_entries(model):
            seen += 1
            url = entry['Weights']
            assert url.startswith(('http://', 'https://')), (model['Name'], url)
            known = by_url.get(url)
            assert known is not None, f"{model['Name']}: {url} is not in published.py"
            assert known.config == model['Config'], (model['Name'], known.config)
            if entry is model:
                assert known.source == 'mmengine', model['Name']  # loads as it is
                continue
            assert entry['File'] == known.name
            assert entry['Converter'] == (
                f'python tools/model_converters/convert.py {known.source} {known.name} DST '
                f"--config {model['Config']}")
            assert entry['Download'].startswith('by hand' if known.by_hand else 'fetched by name')
    assert seen == 12
