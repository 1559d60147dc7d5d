"""mmseg_hrplus.utils.shipped_files: the configs folder of an installed package, or an error
that says how to get one."""
import pytest

from mmseg_hrplus.utils import shipped_files


def test_the_configs_folder_under_mim(tmp_path, monkeypatch):
    (tmp_path / '.mim' / 'configs').mkdir(parents=True)
    monkeypatch.setattr(shipped_files, 'MIM_DIR', tmp_path / '.mim')
    assert shipped_files.shipped_configs_dir() == tmp_path / '.mim' / 'configs'


def test_a_missing_folder_names_the_path_and_the_install(tmp_path, monkeypatch):
    (tmp_path / '.mim').mkdir()
    (tmp_path / '.mim' / 'configs').write_text('a file, not a folder')
    monkeypatch.setattr(shipped_files, 'MIM_DIR', tmp_path / '.mim')
    with pytest.raises(FileNotFoundError) as error:
        shipped_files.shipped_configs_dir()
    assert str(tmp_path / '.mim' / 'configs') in str(error.value)
    assert 'pip install . or pip install -e .' in str(error.value)


def test_the_module_belongs_to_the_package_folder():
    assert shipped_files.MIM_DIR.parent.name == 'mmseg_hrplus'
    assert (shipped_files.MIM_DIR.parent / 'utils' / 'shipped_files.py').is_file()
