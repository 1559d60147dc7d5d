"""docs/model_zoo.md says what mmseg_hrplus/converters/published.py holds: one row per published
file, with its link, the command that converts it (with ``--config``), its config, and for
mmseg's files the figures of the installed mmseg's metafiles; no other download link."""
import re
from pathlib import Path

import pytest
import yaml

from mmseg_hrplus.converters.published import PUBLISHED_FILES

REPO = Path(__file__).resolve().parents[1]
PAGE = (REPO / 'docs' / 'model_zoo.md').read_text()


def rows():
    """file name -> its table row (the first cell is the name in backticks)."""
    found = {}
    for line in PAGE.splitlines():
        match = re.match(r'\| `([^`]+)`', line)
        if match:
            assert match.group(1) not in found, f'{match.group(1)} has two rows'
            found[match.group(1)] = line
    return found


ROWS = rows()


def test_one_row_per_published_file():
    assert set(ROWS) == set(PUBLISHED_FILES)


@pytest.mark.parametrize('name', sorted(PUBLISHED_FILES))
def test_row_gives_the_link_the_command_and_the_config(name):
    known, row = PUBLISHED_FILES[name], ROWS[name]
    assert f']({known.url})' in row
    assert ('**by hand**' in row) == known.by_hand
    command = re.search(r'`(python tools/model_converters/convert\.py [^`]+)`', row).group(1)
    words = command.split()
    assert words[2:4] == [known.source, name], command
    assert words[5:] == ['--config', known.config], command
    assert (REPO / known.config).is_file()
    assert f'`{known.config}`' in row


def test_no_other_download_link():
    links = set(re.findall(r'\]\((https?://[^)\s]+)\)', PAGE))
    downloads = {u for u in links if u.endswith('.pth') or u.startswith('https://1drv.ms/')}
    assert downloads == {f.url for f in PUBLISHED_FILES.values()}


def test_mmseg_rows_give_the_installed_mmsegs_figures():
    import mmseg
    configs = Path(mmseg.__file__).parent / '.mim' / 'configs'
    checked = 0
    for family in ('hrnet', 'bisenetv2'):
        for model in yaml.safe_load((configs / family / 'metafile.yaml').read_text())['Models']:
            name = model['Weights'].rsplit('/', 1)[1]
            if name not in ROWS:
                continue
            metrics = model['Results']['Metrics']
            cells = [c.strip() for c in ROWS[name].strip('|').split('|')]
            assert cells[2] == f"`{model['Name']}`"
            assert cells[-1] == f"{metrics['mIoU']} / {metrics['mIoU(ms+flip)']}"
            checked += 1
    assert checked == 13
