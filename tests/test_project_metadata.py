"""The files a user expects beside the code (LICENSE, CITATION.cff, CHANGELOG.md) exist and agree
with setup.py and the package version.

setup.py is read as text (never run): its ``license=``, ``license_files=`` and classifiers are
taken with regular expressions.
"""
import hashlib
import re
from pathlib import Path

import pytest

import mmseg_hrplus

REPO_ROOT = Path(__file__).resolve().parents[1]

#: sha256 of apache.org's LICENSE-2.0.txt, the unmodified text with its appendix placeholder
#: "Copyright [yyyy] [name of copyright owner]" (the same bytes yapf, onnx, trio and sniffio ship).
APACHE_2_SHA256 = 'cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30'
APPENDIX_PLACEHOLDER = '   Copyright [yyyy] [name of copyright owner]'
COPYRIGHT_LINE = re.compile(r'^   Copyright \d{4}(-\d{4})? \S.*$', re.MULTILINE)

#: The papers the package implements: arXiv id -> what the journal version must say.
PAPERS = {
    '1908.07919': dict(first_author='Wang', journal='IEEE Transactions on Pattern Analysis and '
                       'Machine Intelligence', year=2021, volume=43, issue=10,
                       doi='10.1109/TPAMI.2020.2983686', title_start='Deep High-Resolution'),
    '1606.00915': dict(first_author='Chen', journal='IEEE Transactions on Pattern Analysis and '
                       'Machine Intelligence', year=2018, volume=40, issue=4,
                       doi='10.1109/TPAMI.2017.2699184', title_start='DeepLab:'),
    '2004.02147': dict(first_author='Yu', journal='International Journal of Computer Vision',
                       year=2021, volume=129, issue=11, doi='10.1007/s11263-021-01515-2',
                       title_start='BiSeNet V2:'),
}
ARXIV_ID = re.compile(r'(\d{4}\.\d{4,5})')


def _read(name: str) -> str:
    path = REPO_ROOT / name
    if not path.is_file():
        pytest.fail(f'{name} is missing from the repository root')
    return path.read_text(encoding='utf-8')


def _setup_py_string(keyword: str) -> str:
    """The string literal given to ``keyword=`` in setup.py (fails if there is not exactly one)."""
    found = re.findall(rf"^\s*{keyword}\s*=\s*['\"]([^'\"]+)['\"]", _read('setup.py'),
                       re.MULTILINE)
    assert len(found) == 1, f'setup.py: expected one {keyword}=..., found {found}'
    return found[0]


def _citation() -> dict:
    yaml = pytest.importorskip('yaml')
    data = yaml.safe_load(_read('CITATION.cff'))
    assert isinstance(data, dict), 'CITATION.cff is not a YAML mapping'
    return data


def test_license_is_the_apache_2_text():
    text = _read('LICENSE')
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == 'Apache License', f'first line is {lines[0]!r}'
    assert lines[1] == 'Version 2.0, January 2004'
    assert 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' in text
    assert 'END OF TERMS AND CONDITIONS' in text
    # The appendix's copyright line is filled in, and everything else is the standard text.
    assert '[yyyy]' not in text, 'the appendix copyright line still has its placeholder'
    filled = COPYRIGHT_LINE.findall(text)
    assert len(filled) == 1, 'expected exactly one filled "Copyright YYYY owner" line'
    restored = COPYRIGHT_LINE.sub(APPENDIX_PLACEHOLDER, text)
    digest = hashlib.sha256(restored.encode('utf-8')).hexdigest()
    assert digest == APACHE_2_SHA256, (
        'LICENSE differs from the Apache License 2.0 text apart from the copyright line')


def test_setup_py_declares_the_license_file_and_classifier():
    assert _setup_py_string('license') == 'Apache-2.0'
    setup_text = _read('setup.py')
    files = re.search(r'license_files\s*=\s*\[([^\]]*)\]', setup_text)
    assert files is not None, 'setup.py has no license_files=[...]'
    assert re.findall(r"['\"]([^'\"]+)['\"]", files.group(1)) == ['LICENSE']
    assert "'License :: OSI Approved :: Apache Software License'" in setup_text


def test_citation_agrees_with_the_package_and_setup_py():
    cff = _citation()
    assert cff.get('cff-version') == '1.2.0'
    for key in ('message', 'title', 'authors'):  # required by CFF 1.2.0
        assert cff.get(key), f'CITATION.cff has no {key}'
    assert cff['title'] == _setup_py_string('name')
    assert str(cff.get('version')) == mmseg_hrplus.__version__
    assert cff.get('license') == _setup_py_string('license')


def test_citation_references_the_three_papers():
    references = _citation().get('references') or []
    by_arxiv = {}
    for ref in references:
        texts = [str(ref.get('url', ''))]
        texts += [str(ident.get('value', '')) for ident in ref.get('identifiers') or []]
        ids = {m for t in texts if 'arxiv' in t.lower() for m in ARXIV_ID.findall(t)}
        for arxiv_id in ids:
            by_arxiv[arxiv_id] = ref
    missing = sorted(set(PAPERS) - set(by_arxiv))
    assert not missing, f'CITATION.cff has no reference with arXiv id {missing}'
    for arxiv_id, expected in PAPERS.items():
        ref = by_arxiv[arxiv_id]
        where = f'CITATION.cff reference arXiv:{arxiv_id}'
        assert ref.get('type') == 'article', where
        assert ref['title'].startswith(expected['title_start']), where
        assert ref['authors'][0].get('family-names') == expected['first_author'], where
        for key in ('journal', 'year', 'volume', 'issue', 'doi'):
            assert ref.get(key) == expected[key], f'{where}: {key} is {ref.get(key)!r}'
        dois = [i.get('value') for i in ref.get('identifiers') or [] if i.get('type') == 'doi']
        assert dois in ([], [expected['doi']]), f'{where}: identifiers give DOI {dois}'


def test_changelog_has_a_heading_for_the_current_version():
    version = mmseg_hrplus.__version__
    headings = re.findall(r'^#{1,3}\s+(.+?)\s*$', _read('CHANGELOG.md'), re.MULTILINE)
    versions = [h for h in headings if re.match(r'\[?v?\d+\.\d+', h)]
    assert versions, 'CHANGELOG.md has no version heading'
    newest = re.match(r'\[?v?(\d+\.\d+(?:\.\d+)?\S*?)\]?(\s|$)', versions[0]).group(1)
    assert newest == version, (
        f'the newest CHANGELOG.md heading is {versions[0]!r}, the package is {version}')
