"""Published files by name: ``convert.py SOURCE NAME DST`` with the name of a file of
:mod:`mmseg_hrplus.converters.published` that is not local fetches it from its link through the
verified download (hash-checked where the name carries a hash, cached per URL, read safely).

A server on 127.0.0.1 stands in for the projects' hosts (the table's entries are pointed at it);
no test touches the network. The table itself is checked against what it promises: configs that
exist, registered sources, links that end in the file name, hash prefixes as the names carry
them, and mmseg's entries equal to the installed mmseg's metafiles."""
import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml

from mmseg_hrplus.checkpoint import CheckpointDownloadError, cached_path_for
from mmseg_hrplus.checkpoint.download import expected_hash_prefix
from mmseg_hrplus.converters import ConversionError, published, source_names
from mmseg_hrplus.converters.published import PUBLISHED_FILES, PublishedFile
from mmseg_hrplus.converters.registry import read_source_file
from tests.helpers.manifests import manifest, synthesise
from tests.helpers.served_files import serve_directory
from tests.helpers.tools import load_tool, run_tool_main

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack

REPO = Path(__file__).resolve().parents[2]
SMALL_V1 = 'configs/hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py'
#: a published name whose '-100000.' reads as a hash but is kazuto's iteration count
ITERATION_COUNT = 'deeplabv2_resnet101_msc-cocostuff164k-100000.pth'
BY_HAND = 'hrnet_w18_small_v1_cityscapes_cls19_1024x2048_trainset.pth'


@pytest.fixture(autouse=True)
def hub_dir(tmp_path, monkeypatch):
    """A fresh download cache, and a working folder where no published name exists."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.chdir(work)
    yield
    torch.hub.set_dir(before)


@pytest.fixture
def hosts(tmp_path, monkeypatch):
    """A synthesised W18-Small-v1 file served under a name with its true hash, under one with a
    wrong hash, and under kazuto's iteration-count name; the table points at the server."""
    root = tmp_path / 'served'
    root.mkdir()
    weights = synthesise(manifest('hrnet-seg-w18-small-v1'))
    torch.save(weights, root / 'plain.pth')
    data = (root / 'plain.pth').read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    hashed = f'hrnet_w18_small_v1-{digest[:8]}.pth'
    wrong = 'deadbeef' if not digest.startswith('deadbeef') else 'beefdead'
    mislabelled = f'hrnet_w18_small_v1-{wrong}.pth'
    for name in (hashed, mislabelled, ITERATION_COUNT):
        (root / name).write_bytes(data)
    with serve_directory(root) as base:
        table = {
            hashed: PublishedFile(hashed, 'hrnet-seg', SMALL_V1, f'{base}/{hashed}',
                                  sha256_prefix=digest[:8]),
            mislabelled: PublishedFile(mislabelled, 'hrnet-seg', SMALL_V1,
                                       f'{base}/{mislabelled}', sha256_prefix=wrong),
            ITERATION_COUNT: dataclasses.replace(PUBLISHED_FILES[ITERATION_COUNT],
                                                 url=f'{base}/{ITERATION_COUNT}'),
            BY_HAND: PUBLISHED_FILES[BY_HAND],
        }
        monkeypatch.setattr(published, 'PUBLISHED_FILES', table)
        yield dict(table=table, weights=weights, hashed=hashed, mislabelled=mislabelled,
                   digest=digest)


def test_a_published_name_is_fetched_converted_and_checked(hosts, tmp_path, capsys):
    dst = tmp_path / 'out.pth'
    run_tool_main(load_tool('model_converters/convert.py'),
                  ['hrnet-seg', hosts['hashed'], str(dst), '--config', str(REPO / SMALL_V1)])
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(
        'all 434 converted tensors load strictly into its model (EncoderDecoder)')
    out = torch.load(dst, map_location='cpu', weights_only=True)
    assert out['meta']['original_file'] == hosts['hashed']
    assert torch.equal(out['state_dict']['backbone.conv1.weight'],
                       hosts['weights']['model.conv1.weight'])
    url = hosts['table'][hosts['hashed']].url
    assert os.path.isfile(cached_path_for(url))  # verified, then kept


def test_a_file_whose_hash_is_not_its_names_is_refused_and_not_cached(hosts):
    url = hosts['table'][hosts['mislabelled']].url
    with pytest.raises(CheckpointDownloadError, match=(
            rf'^cannot use checkpoint {url}: its SHA-256 begins {hosts["digest"][:8]}, the file '
            r'name says [0-9a-f]{8} \(a different or damaged file\); nothing was cached$')):
        read_source_file(hosts['mislabelled'])
    assert not os.path.exists(cached_path_for(url))


def test_an_iteration_count_in_a_name_is_not_taken_for_a_hash(hosts):
    url = hosts['table'][ITERATION_COUNT].url
    assert expected_hash_prefix(url) == '100000'  # what the name rule alone would demand
    state = read_source_file(ITERATION_COUNT)
    assert torch.equal(state['model.conv1.weight'], hosts['weights']['model.conv1.weight'])


def test_a_file_published_only_on_a_page_names_the_page(hosts):
    with pytest.raises(ConversionError, match=(
            rf'^{BY_HAND} is not a local file, and its project publishes it only on a page that '
            r'cannot be fetched by a program: download it by hand from '
            r'https://1drv\.ms/u/s!Aus8VCZ_C_33gSEsg-2sxTmZL2AT\?e=AqHbjh, then pass its path '
            r'as SRC$')):
        read_source_file(BY_HAND)


def test_a_local_file_of_a_published_name_is_read_not_fetched(hosts):
    torch.save({'w': torch.arange(3)}, hosts['hashed'])  # in the working folder
    assert torch.equal(read_source_file(hosts['hashed'])['w'], torch.arange(3))
    assert not os.path.exists(cached_path_for(hosts['table'][hosts['hashed']].url))


# -- the table

def test_every_entry_names_a_config_a_source_and_its_own_file():
    assert len(PUBLISHED_FILES) == 27
    sources = set(source_names())
    for name, known in PUBLISHED_FILES.items():
        assert (REPO / known.config).is_file(), (name, known.config)
        assert known.source in sources, (name, known.source)
        assert known.url.startswith('https://'), name
        if known.by_hand:
            assert known.url.startswith('https://1drv.ms/u/s!'), name
        else:
            assert known.url.endswith(f'/{name}'), name


def test_hash_prefixes_are_the_ones_the_names_carry():
    for name, known in PUBLISHED_FILES.items():
        if name == ITERATION_COUNT:
            assert known.sha256_prefix is None
        else:
            assert known.sha256_prefix == expected_hash_prefix(known.url), name
    assert sum(k.sha256_prefix is not None for k in PUBLISHED_FILES.values()) == 14


def test_mmseg_entries_are_the_installed_mmsegs_checkpoints():
    import mmseg
    configs = Path(mmseg.__file__).parent / '.mim' / 'configs'
    weights = {m['Weights'] for family in ('hrnet', 'bisenetv2')
               for m in yaml.safe_load((configs / family / 'metafile.yaml').read_text())['Models']
               if m['Results']['Dataset'] == 'Cityscapes' and m['Name'].startswith(
                   ('fcn_hr', 'bisenetv2_fcn'))}
    ours = {k.url for k in PUBLISHED_FILES.values() if 'download.openmmlab.com' in k.url}
    assert len(weights) == 13 and ours == weights


def test_published_lists_every_name_with_its_source_config_and_link(capsys):
    run_tool_main(load_tool('model_converters/convert.py'), ['--published'])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * len(PUBLISHED_FILES)
    at = lines.index(ITERATION_COUNT)
    assert lines[at + 1:at + 3] == [
        '    deeplab-kazuto -> configs/deeplabv2/deeplabv2_r101_cocostuff164k_kazuto-weights.py',
        f'    fetched from {PUBLISHED_FILES[ITERATION_COUNT].url}']
    at = lines.index(BY_HAND)
    assert lines[at + 2] == f'    download by hand from {PUBLISHED_FILES[BY_HAND].url}'
