"""mmseg_hrplus.utils.path_lists: folder walks and list files as the tools read them."""
import pytest

from mmseg_hrplus.utils.path_lists import IMAGE_SUFFIXES, files_under, listed_paths

pytestmark = pytest.mark.torch21


def test_files_under_walks_subfolders_sorted_and_ignores_case_and_other_files(tmp_path):
    for name in ('b.png', 'a/c.JPG', 'a/notes.txt', 'z.webp'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'd.png').mkdir()  # a folder named like an image is not a file
    found = files_under(tmp_path, IMAGE_SUFFIXES)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ['a/c.JPG', 'b.png', 'z.webp']


def test_listed_paths_skip_blanks_and_comments_and_resolve_from_the_list(tmp_path):
    listing = tmp_path / 'sub' / 'list.txt'
    listing.parent.mkdir()
    listing.write_text(f'  x.png  \n\n# a comment\n{tmp_path / "abs.png"}\n../up.png\n')
    assert listed_paths(listing) == [
        ('x.png', listing.parent / 'x.png'),
        (str(tmp_path / 'abs.png'), tmp_path / 'abs.png'),
        ('../up.png', listing.parent / '../up.png')]
